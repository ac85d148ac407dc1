# Pivot steps: calls a saga cannot undo are held for a person to approve.
#
# agenthelm undoes a failed saga by running each completed step's
# compensator in reverse order. A step without one (sending an email,
# deleting without a backup, calling an API that has no refund) cannot be
# undone, so a person should see it before it happens. Read-only calls
# change nothing and pass.
#
# input.tool.read_only, has_compensator and irreversible are resolved by
# agenthelm from agenthelm.yaml and, for trusted upstreams only, from the
# tool's MCP annotations. An upstream that is not trusted gets the safe
# defaults: not read-only, and no compensator unless one is configured.
#
# Settings: data.agenthelm.irreversible (approvers, approval_timeout), and
# data.agenthelm.lists.approval_exempt_tools: tools whose irreversibility
# you accept, each with the reason why (for example a chat message).
package agenthelm.authz

hold contains {
	"rule": "irreversible",
	"reason": sprintf("%s cannot be undone (%s): a person must approve it", [tool_id, why]),
	"approvers": data.agenthelm.irreversible.approvers,
	"approval_timeout": data.agenthelm.irreversible.approval_timeout,
} if {
	some why in irreversible_because
	not exempt_because
}

exempt_because := setting(data.agenthelm.lists.approval_exempt_tools)

# An explicit mark in the configuration wins over everything, read-only
# included.
irreversible_because contains "it is marked irreversible" if input.tool.irreversible

irreversible_because contains "it changes state and has no compensator" if {
	not input.tool.read_only
	not input.tool.has_compensator
	not input.tool.irreversible # one reason is enough
}
