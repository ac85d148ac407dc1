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

# irreversible_because says why the called tool cannot be undone: an
# explicit mark in the configuration wins over everything, read-only
# included; otherwise a call that changes state and has no compensator. It
# is undefined for the others, read-only calls first: they are the most
# common. It reads only input.tool, so agenthelm computes it once per tool
# and most calls pay a lookup for this file.
irreversible_because := "it is marked irreversible" if {
	input.tool.irreversible
} else := "it changes state and has no compensator" if {
	not input.tool.read_only
	not input.tool.has_compensator
}

hold contains {
	"rule": "irreversible",
	"reason": sprintf("%s cannot be undone (%s): a person must approve it", [tool_id, why]),
	"approvers": data.agenthelm.irreversible.approvers,
	"approval_timeout": data.agenthelm.irreversible.approval_timeout,
} if {
	why := irreversible_because
	not exempt_because
}

# The exemptions are a setting that names tools (see profile in authz.rego).
tool_settings["exempt"] := data.agenthelm.lists.approval_exempt_tools

exempt_because := profile.exempt
