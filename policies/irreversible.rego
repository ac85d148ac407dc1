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

# One rule per reason, each starting with the tool facts it needs, so that
# a read-only call or one with a compensator fails on the first line.

# An explicit mark in the configuration wins over everything, read-only
# included.
hold contains {
	"rule": "irreversible",
	"reason": sprintf("%s cannot be undone (it is marked irreversible): a person must approve it", [tool_id]),
	"approvers": data.agenthelm.irreversible.approvers,
	"approval_timeout": data.agenthelm.irreversible.approval_timeout,
} if {
	input.tool.irreversible
	not exempt_because
}

hold contains {
	"rule": "irreversible",
	"reason": sprintf("%s cannot be undone (it changes state and has no compensator): a person must approve it", [tool_id]),
	"approvers": data.agenthelm.irreversible.approvers,
	"approval_timeout": data.agenthelm.irreversible.approval_timeout,
} if {
	not input.tool.read_only # first: the most common calls are read-only
	not input.tool.has_compensator
	not input.tool.irreversible # one reason is enough
	not exempt_because
}

# The exemptions are a setting that names tools (see profile in authz.rego).
tool_settings["exempt"] := data.agenthelm.lists.approval_exempt_tools

exempt_because := profile.exempt
