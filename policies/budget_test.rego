package agenthelm.authz_test

import data.agenthelm.authz

payment := object.union(compensatable, {"name": "create_payment", "upstream": "payments"})

pay(amount, steps) := with_steps(call(payment, {"amount": amount, "currency": "EUR"}), steps)

paid(amount, status) := step("create_payment", "payments", status, {"amount": amount}, 1767257900)

test_spending_within_budget_is_allowed if {
	d := authz.decision with input as pay(200, [paid(300, "succeeded"), paid(400, "succeeded")])
	d.allow
}

test_spending_above_soft_limit_is_held if {
	d := authz.decision with input as pay(200, [paid(500, "succeeded"), paid(400, "succeeded")])
	d.require_approval
	d.approvers == ["finance-oncall"]
	d.approval_timeout == "1h"
	d.reasons == ["payments/create_payment: saga saga-1 would spend 1100 in total, above 1000: a person must approve"]
}

test_spending_above_hard_limit_is_denied if {
	d := authz.decision with input as pay(2000, [paid(2500, "succeeded"), paid(600, "pending")])
	not d.allow
	not d.require_approval
	d.labels.rules == "budget.hard_limit"
}

test_pending_steps_count_and_undone_steps_do_not if {
	authz.spent == 900 with input as pay(1, [
		paid(500, "succeeded"), paid(400, "pending"),
		paid(1000, "failed"), paid(1000, "denied"), paid(1000, "compensated"),
	])
}

test_string_amounts_count if {
	d := authz.decision with input as pay("600.00", [paid("500", "succeeded")])
	d.require_approval
}

test_refunds_do_not_free_budget if {
	authz.spent == 900 with input as pay(1, [paid(900, "succeeded"), paid(-900, "succeeded")])
}

test_only_spending_tools_count if {
	other := step("create_entities", "memory", "succeeded", {"amount": 99999}, 1767257900)
	refund := step("create_refund", "payments", "succeeded", {"amount": 300}, 1767257900)
	http_route := step("charge", "payments", "succeeded", {"amount": 450}, 1767257900)
	authz.spent == 450 with input as pay(100, [other, refund, http_route])
}

test_amount_that_is_not_a_number_is_denied if {
	d := authz.decision with input as pay("a lot", [])
	not d.allow
	d.reasons == [`payments/create_payment: argument "amount" must be a number, got a lot`]
}

test_spending_call_without_amount_is_not_checked if {
	# create_payment without an amount spends nothing we can see.
	d := authz.decision with input as call(payment, {"currency": "EUR"})
	d.allow
}

recent(n) := [step("run_command", "shell", "succeeded", {}, 1767258000 - i) | some i in numbers.range(1, n)]

shell_call(steps) := with_steps(call(shell, {"command": "ls"}), steps)

test_rate_limit if {
	authz.decision.allow with input as shell_call(recent(29))
	d := authz.decision with input as shell_call(recent(30))
	not d.allow
	d.reasons == ["shell/run_command: 31 calls in the last minute in saga saga-1, the limit is 30"]
}

test_rate_limit_below_one_denies_every_call if {
	d := authz.decision with input as shell_call([]) with data.agenthelm.budget.max_calls_per_minute as 0
	not d.allow
	d.reasons == ["shell/run_command: 1 call in the last minute in saga saga-1, the limit is 0"]
}

test_rate_limit_window_is_one_minute if {
	old := [step("run_command", "shell", "succeeded", {}, 1767258000 - 61) | some _ in numbers.range(1, 100)]
	authz.decision.allow with input as shell_call(old)
}

test_rate_limit_ignores_denied_calls_and_other_tools if {
	denied := [step("run_command", "shell", "denied", {}, 1767258000) | some _ in numbers.range(1, 50)]
	other := [step("list_files", "shell", "succeeded", {}, 1767258000) | some _ in numbers.range(1, 50)]
	authz.decision.allow with input as shell_call(array.concat(denied, other))
}
