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
# numbers: one currency is assumed.
#
# Rate: more than budget.max_calls_per_minute calls of one tool in one saga
# within 60 seconds (this call included) are denied; a runaway loop stops
# there. Denied calls do not count, so the limit lifts once the loop slows.
package agenthelm.authz

budget := data.agenthelm.budget

# amount_argument names the argument that holds what this call spends;
# undefined if the tool does not spend.
amount_argument := setting(budget.tools)

# this_amount is what this call spends.
default this_amount := 0

this_amount := a if {
	a := amount(input.arguments, amount_argument)
	a > 0
}

spent := sum([a |
	some step in input.saga.steps
	some arg in amount_arguments
	_ = step.arguments[arg] # first, as it is cheap: most steps have no amount at all
	step.status in {"succeeded", "pending"}
	step_setting(budget.tools, step) == arg
	a := amount(step.arguments, arg)
	a > 0
])

# amount_arguments are the argument names that budget.tools use: usually
# just "amount".
amount_arguments := {arg | some arg in budget.tools}

saga_total := spent + this_amount

deny contains {
	"rule": "budget.hard_limit",
	"reason": sprintf("%s: saga %s would spend %v in total, above the hard limit of %v", [
		tool_id, input.saga.id, saga_total, budget.deny_above,
	]),
} if {
	this_amount > 0
	saga_total > budget.deny_above
}

hold contains {
	"rule": "budget.soft_limit",
	"reason": sprintf("%s: saga %s would spend %v in total, above %v: a person must approve", [
		tool_id, input.saga.id, saga_total, budget.hold_above,
	]),
	"approvers": budget.approvers,
	"approval_timeout": budget.approval_timeout,
} if {
	this_amount > 0
	saga_total > budget.hold_above
	saga_total <= budget.deny_above
}

# A spending call whose amount is not a number cannot be checked, so it is
# denied rather than waved through.
deny contains {
	"rule": "budget.amount",
	"reason": sprintf("%s: argument %q must be a number, got %v", [tool_id, name, input.arguments[name]]),
} if {
	name := amount_argument
	_ = input.arguments[name]
	not amount(input.arguments, name)
}

deny contains {
	"rule": "budget.rate",
	"reason": sprintf("%s: %d calls in the last minute in saga %s, the limit is %d", [
		tool_id, recent_calls + 1, input.saga.id, budget.max_calls_per_minute,
	]),
} if {
	recent_calls + 1 > budget.max_calls_per_minute
}

recent_calls := count([step |
	some step in input.saga.steps
	step.tool == input.tool.name
	step.upstream == input.tool.upstream
	input.time.unix - step.unix < 60
	step.status != "denied"
])
