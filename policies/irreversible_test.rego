package agenthelm.authz_test

import data.agenthelm.authz

test_read_only_call_is_not_held if {
	d := authz.decision with input as base_input
	d.allow
}

test_compensatable_call_is_not_held if {
	d := authz.decision with input as call(object.union(compensatable, {"name": "create_entities", "upstream": "memory"}), {"entities": []})
	d.allow
}

test_call_without_compensator_is_held if {
	req := call({"name": "send_email", "upstream": "mail", "read_only": false, "has_compensator": false}, {"to": "a@example.com"})
	d := authz.decision with input as req
	d.require_approval
	d.reasons == ["mail/send_email cannot be undone (it changes state and has no compensator): a person must approve it"]
	d.labels.rules == "irreversible"
}

test_marked_irreversible_is_held_even_with_compensator if {
	tool := object.union(compensatable, {"name": "delete_bucket", "upstream": "storage", "irreversible": true})
	d := authz.decision with input as call(tool, {"bucket": "logs"})
	d.require_approval
	d.reasons == ["storage/delete_bucket cannot be undone (it is marked irreversible): a person must approve it"]
}

test_marked_irreversible_wins_over_read_only if {
	d := authz.decision with input as call({"irreversible": true}, {})
	d.require_approval
}

test_exempt_tool_is_not_held if {
	d := authz.decision with input as call({"name": "post_message", "upstream": "slack", "read_only": false}, {"text": "deployed"})
	d.allow
}

test_exemption_is_per_upstream if {
	# slack/post_message is exempt; the same tool name elsewhere is not.
	d := authz.decision with input as call({"name": "post_message", "upstream": "forum", "read_only": false}, {"text": "hi"})
	d.require_approval
}

test_missing_tool_facts_are_treated_as_unsafe if {
	# An input without the resolved facts (for example written by hand for
	# `agenthelm policy eval`) is held, not allowed.
	req := object.union(base_input, {"tool": {"name": "x", "upstream": "y"}})
	d := authz.decision with input as object.remove(req, ["tool"]) with input.tool as {"name": "x", "upstream": "y"}
	d.require_approval
}
