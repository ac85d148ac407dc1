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

# budget.tools names the spending tools (see profile in authz.rego): the
# rules of this family, deny_listed.spending and hold_listed.spending, are
# evaluated only for them.
tool_settings.spending := budget.tools

# amount_argument names the argument that holds what this call spends;
# undefined if the tool does not spend.
amount_argument := profile.spending

# spending is what the call's amount argument holds, as a number; undefined
# if the tool does not spend or the argument is not a number.
spending := number_of(input.arguments[amount_argument])

# this_amount is what this call spends: undefined unless it is positive, so
# that the limits below are checked only for calls that spend.
this_amount := spending if spending > 0

# spent is what the saga's earlier spending steps add up to. A step counts
# if its tool spends (budget.tools) through the argument it has, it
# succeeded or is pending, and the amount is a positive number.
spent := sum([a |
	some arg in amount_arguments # usually just "amount": one pass over the steps
	some step in input.saga.steps
	x := step.arguments[arg] # first, as it is cheap: most steps have no amount at all
	spending_statuses[step.status]
	step_setting(budget.tools, step) = arg # unification, cheaper than ==
	a := number_of(x)
	a > 0
])

# amount_arguments are the argument names that budget.tools use: usually
# just "amount". (Like spending_statuses, computed once per revision.)
amount_arguments := {arg | some arg in budget.tools}

# The statuses of the steps whose amounts count, as an object: a lookup is
# cheaper than `in`.
spending_statuses := {"succeeded": true, "pending": true}

saga_total := spent + this_amount

# over_budget is the limit that saga_total goes above, if any: one
# comparison decides for most calls.
over_budget := "hard_limit" if {
	saga_total > budget.deny_above
} else := "soft_limit" if {
	saga_total > budget.hold_above
}

deny_listed.spending contains {
	"rule": "budget.hard_limit",
	"reason": sprintf("%s: saga %s would spend %v in total, above the hard limit of %v", [
		tool_id, input.saga.id, saga_total, budget.deny_above,
	]),
} if {
	over_budget = "hard_limit"
}

# Above hold_above and not above deny_above (over_budget is soft_limit only
# if saga_total is not above deny_above).
hold_listed.spending contains {
	"rule": "budget.soft_limit",
	"reason": sprintf("%s: saga %s would spend %v in total, above %v: a person must approve", [
		tool_id, input.saga.id, saga_total, budget.hold_above,
	]),
	"approvers": budget.approvers,
	"approval_timeout": budget.approval_timeout,
} if {
	over_budget = "soft_limit"
}

# A spending call whose amount is not a number cannot be checked, so it is
# denied rather than waved through.
deny_listed.spending contains {
	"rule": "budget.amount",
	"reason": sprintf("%s: argument %q must be a number, got %v", [tool_id, name, input.arguments[name]]),
} if {
	name := amount_argument
	_ = input.arguments[name]
	not spending
}

# The rate limit. The first line spares most calls the pass over the
# steps.
deny contains {
	"rule": "budget.rate",
	"reason": sprintf("%s: %d calls in the last minute in saga %s, the limit is %d", [
		tool_id, recent_calls + 1, input.saga.id, budget.max_calls_per_minute,
	]),
} if {
	count(input.saga.steps) >= rate_min_steps
	recent_calls + 1 > budget.max_calls_per_minute
}

# rate_min_steps: a saga with fewer earlier steps cannot go above the limit
# (recent_calls + 1 > max needs max - 1 < recent_calls <= steps). One less,
# so that rounding never makes the guard stricter than the limit. Computed
# once per revision.
rate_min_steps := floor(budget.max_calls_per_minute) - 1 if {
	is_number(budget.max_calls_per_minute)
} else := 0

recent_calls := count([step |
	some step in input.saga.steps
	step.tool == input.tool.name
	step.upstream == input.tool.upstream
	input.time.unix - step.unix < 60
	step.status != "denied"
])
