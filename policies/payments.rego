# Large charges need a person from payments on-call (the demo's example).
#
# A call of one of payments.charge_tools whose amount (the argument named
# there) is above payments.approval_above is held until someone in
# payments.approvers approves it, for at most payments.approval_timeout;
# then it is denied. This holds whatever the saga has spent so far: the
# budget rules in budget.rego look at totals, this rule at single charges.
package agenthelm.authz

payments := data.agenthelm.payments

# payments.charge_tools names the charging tools (see profile in
# authz.rego): the rules below, deny_listed.charge and hold_listed.charge,
# are evaluated only for them.
tool_settings.charge := payments.charge_tools

# charge is the amount of the charge, in the argument that
# payments.charge_tools names for the tool; undefined if the tool does not
# charge or the argument is not a number.
charge := number_of(input.arguments[profile.charge])

hold_listed.charge contains {
	"rule": "payments.large_charge",
	"reason": sprintf("%s: a charge of %v is above %v: payments on-call must approve it", [tool_id, amount, limit]),
	"approvers": payments.approvers,
	"approval_timeout": payments.approval_timeout,
} if {
	amount := charge
	limit := payments.approval_above
	amount > limit
}

# A charge whose amount cannot be read cannot be checked: deny it.
deny_listed.charge contains {
	"rule": "payments.amount",
	"reason": sprintf("%s: argument %q must be a number", [tool_id, profile.charge]),
} if {
	not charge
}
