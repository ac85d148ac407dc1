package agenthelm.authz_test

import data.agenthelm.authz

# In the demo charge_customer has a refund compensator.
charge_tool := object.union(compensatable, {"name": "charge_customer", "upstream": "payments"})

charge(amount) := d if {
	d := authz.decision with input as call(charge_tool, {"customer": "cus_123", "amount": amount, "currency": "usd"})
}

test_small_charge_is_allowed if {
	charge(120).allow
	charge(500).allow
}

test_large_charge_needs_payments_oncall if {
	d := charge(750)
	not d.allow
	d.require_approval
	d.approvers == ["payments-oncall"]
	d.approval_timeout == "30m"
	d.reasons == ["payments/charge_customer: a charge of 750 is above 500: payments on-call must approve it"]
	d.labels == {"rules": "payments.large_charge"}
}

test_large_charge_as_string_needs_approval if {
	charge("500.01").require_approval
}

test_charge_on_any_upstream if {
	tool := object.union(charge_tool, {"upstream": "stripe"})
	d := authz.decision with input as call(tool, {"amount": 900})
	d.require_approval
}

test_charge_without_readable_amount_is_denied if {
	d := authz.decision with input as call(charge_tool, {"customer": "cus_123"})
	not d.allow
	not d.require_approval
	d.labels.rules == "payments.amount"

	e := charge(["750"])
	not e.allow
	not e.require_approval
}
