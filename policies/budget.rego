# A spending budget and a rate limit per saga.
#
# Spending: the amounts of a saga's spending calls add up. If what the saga
# has spent plus this call goes above budget.hold_above, a person must
# approve; above budget.deny_above the call is denied. Spending calls are
# the tools in budget.tools, each with the argument that holds its amount.
# Earlier steps count when they succeeded, and also while they are pending
# (held or in flight): otherwise parallel calls would each see an unspent
# budget. Steps that failed, were denied or were compensated (refunded) do
# not count, nor do negative amounts (refunds). Amounts are summed as plain
# numbers: one currency is assumed. The earlier steps' amounts come added up
# by tool, status and argument in input.saga.amounts, so that the budget
# looks at a few totals rather than at every earlier step.
#
# Rate: more than budget.max_calls_per_minute calls of one tool in one saga
# within 60 seconds (this call included) are denied; a runaway loop stops
# there. Denied calls do not count, so the limit lifts once the loop slows.
package agenthelm.authz

budget := data.agenthelm.budget

# budget.tools names the spending tools (see profile in authz.rego): the
# rules of this family, deny_listed.spending and hold_listed.spending, are
# evaluated only for them.
tool_settings.spending := budget.tools

# spending is what this call spends: the number in the argument that
# budget.tools names for it (see profile in authz.rego); undefined if the
# tool does not spend or the argument is not a number.
spending := number_of(input.arguments[profile.spending])

# spent is what the saga's earlier spending steps add up to. An entry of
# input.saga.amounts is the total of one argument of the steps of one tool
# with one status (the positive numbers, or numeric strings, it held); it
# counts if the status is succeeded or pending, and the tool spends through
# that argument.
spent := sum([a.total |
	some a in input.saga.amounts
	arg := a.argument
	amount_arguments[arg] # first, as it is cheap: most amounts are not spending
	spending_statuses[a.status]
	tool_profile(a.upstream, a.tool).spending = arg # unification, cheaper than ==
])

# amount_arguments are the argument names that budget.tools use: usually
# just "amount". (Like spending_statuses, computed once per revision, and an
# object: a lookup is cheaper than `in`.)
amount_arguments := {arg: true | some arg in budget.tools}

spending_statuses := {"succeeded": true, "pending": true}

# saga_total is what the saga would have spent with this call; undefined
# unless this call spends a positive amount, so that the limits below are
# checked only for calls that spend.
saga_total := spent + amount if {
	amount := spending
	amount > 0
}

deny_listed.spending contains {
	"rule": "budget.hard_limit",
	"reason": sprintf("%s: saga %s would spend %v in total, above the hard limit of %v", [
		tool_id, input.saga.id, saga_total, budget.deny_above,
	]),
} if {
	saga_total > budget.deny_above
}

hold_listed.spending contains {
	"rule": "budget.soft_limit",
	"reason": sprintf("%s: saga %s would spend %v in total, above %v: a person must approve", [
		tool_id, input.saga.id, saga_total, budget.hold_above,
	]),
	"approvers": budget.approvers,
	"approval_timeout": budget.approval_timeout,
} if {
	saga_total > budget.hold_above
	saga_total <= budget.deny_above # above it, the hard limit denies
}

# A spending call whose amount is not a number cannot be checked, so it is
# denied rather than waved through.
deny_listed.spending contains {
	"rule": "budget.amount",
	"reason": sprintf("%s: argument %q must be a number, got %v", [tool_id, profile.spending, input.arguments[profile.spending]]),
} if {
	not spending
	_ = input.arguments[profile.spending]
}

# The rate limit. agenthelm counts the saga's calls of the last minute by
# tool in input.saga.recent_calls (over the whole saga, denied ones not
# counted, keyed like tool_id), so this is one lookup rather than a pass
# over the steps; a tool with no recent call has no entry, and the rule
# stops there.
deny contains {
	"rule": "budget.rate",
	"reason": sprintf("%s: %d calls in the last minute in saga %s, the limit is %d", [
		tool_id, calls, input.saga.id, budget.max_calls_per_minute,
	]),
} if {
	calls := input.saga.recent_calls[tool_id] + 1
	calls > budget.max_calls_per_minute
}

# A limit below 1 denies even a tool's first call of the minute. (Computed
# once per revision.)
deny contains {
	"rule": "budget.rate",
	"reason": sprintf("%s: 1 call in the last minute in saga %s, the limit is %d", [
		tool_id, input.saga.id, budget.max_calls_per_minute,
	]),
} if {
	rate_denies_every_call
	not input.saga.recent_calls[tool_id]
}

rate_denies_every_call if budget.max_calls_per_minute < 1
