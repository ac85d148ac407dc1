# Tests of the decision's composition, and the helpers the other test files
# share. Run them all with `agenthelm policy test policies/` (or `opa test`).
package agenthelm.authz_test

import data.agenthelm.authz

# A realistic call that no rule objects to: a read-only file read inside the
# workspace, first step of its saga. Tests change what they need with call().
base_input := {
	"version": "agenthelm.policy/v1",
	"tool": {
		"name": "read_text_file",
		"upstream": "filesystem",
		"annotations": {"readOnlyHint": true},
		"has_compensator": false,
		"read_only": true,
		"irreversible": false,
		"idempotent": true,
	},
	"arguments": {"path": "/workspace/README.md"},
	"transport": {"kind": "mcp", "protocol": "stdio", "method": "tools/call"},
	"agent": {"id": "support-bot", "source": "client_info", "client": {"name": "support-bot", "version": "1.4.0"}},
	"saga": {"id": "saga-1", "steps": [], "counts": {"total": 0}, "elapsed_seconds": 0},
	"time": {"unix": 1767258000, "rfc3339": "2026-01-01T09:00:00Z", "weekday": "Thursday", "hour": 9},
}

# call(tool, args) is base_input with the tool fields in tool changed and
# the arguments replaced.
call(tool, args) := object.union(object.remove(base_input, ["arguments"]), {"tool": tool, "arguments": args})

# A tool that changes state and can be undone.
compensatable := {"read_only": false, "has_compensator": true, "idempotent": false}

# with_steps(req, steps) puts steps into the saga of req, with the amounts
# and recent calls agenthelm counts from them.
with_steps(req, steps) := object.union(req, {"saga": {
	"steps": steps,
	"counts": {"total": count(steps)},
	"amounts": saga_amounts(steps),
	"recent_calls": recent_calls(steps, req.time.unix),
}})

# recent_calls(steps, now) is input.saga.recent_calls as agenthelm counts
# it: the steps of the last 60 seconds that were not denied, by
# "<upstream>/<tool>". (policy/recent_test.go checks that agenthelm and
# this function agree.)
recent_calls(steps, now) := {id: n |
	some id in {concat("/", [s.upstream, s.tool]) | some s in steps; counts_as_recent(s, now)}
	n := count([s | some s in steps; counts_as_recent(s, now); concat("/", [s.upstream, s.tool]) == id])
}

counts_as_recent(s, now) if {
	now - s.unix < 60
	s.status != "denied"
}

# saga_amounts(steps) is input.saga.amounts as agenthelm computes it from
# steps: the positive amounts of each top-level argument, added up by
# upstream, tool, status and argument, in that order. (policy/amounts_test.go
# checks that agenthelm and this function agree.)
saga_amounts(steps) := [{"upstream": u, "tool": t, "status": s, "argument": arg, "total": sum(amounts)} |
	some [u, t, s, arg] in {[step.upstream, step.tool, step.status, arg] |
		some step in steps
		is_object(step.arguments)
		some arg, x in step.arguments
		positive_amount(x)
	}
	amounts := [a |
		some step in steps
		[step.upstream, step.tool, step.status] == [u, t, s]
		a := positive_amount(step.arguments[arg])
	]
]

positive_amount(x) := a if {
	a := authz.number_of(x)
	a > 0
}

step(tool, upstream, status, args, unix) := {
	"tool": tool, "upstream": upstream, "status": status,
	"arguments": args, "time": "", "unix": unix,
}

test_harmless_call_is_allowed if {
	d := authz.decision with input as base_input
	d == {
		"allow": true,
		"require_approval": false,
		"reasons": [],
		"approvers": [],
		"approval_timeout": "",
		"labels": {},
	}
}

test_deny_wins_over_hold if {
	# Held (irreversible: no compensator) and denied (on the deny list).
	req := call({"name": "drop_database", "upstream": "db", "read_only": false}, {})
	d := authz.decision with input as req
	d == {
		"allow": false,
		"require_approval": false,
		# Deny reasons come first, then the hold's.
		"reasons": [
			"db/drop_database is denied: it drops a whole database",
			"db/drop_database cannot be undone (it changes state and has no compensator): a person must approve it",
		],
		"approvers": [],
		"approval_timeout": "",
		"labels": {"rules": "deny.tool,irreversible"},
	}
}

test_hold_wins_over_allow if {
	d := authz.decision with input as call({"name": "send_email", "upstream": "mail", "read_only": false}, {"to": "a@example.com"})
	not d.allow
	d.require_approval
	d.approvers == ["oncall"]
	d.approval_timeout == "15m"
}

test_holds_merge_approvers_and_take_the_shortest_timeout if {
	# An irreversible charge above the payments limit: two holds.
	req := call({"name": "charge_customer", "upstream": "payments", "read_only": false}, {"amount": 750})
	d := authz.decision with input as req
	d.require_approval
	d.approvers == ["oncall", "payments-oncall"]
	d.approval_timeout == "15m"
	d.labels.rules == "irreversible,payments.large_charge"
}

test_equal_timeouts_in_different_spellings if {
	d := authz.decision with input as call({"name": "charge_customer", "upstream": "payments", "read_only": false}, {"amount": 750})
		with data.agenthelm.irreversible.approval_timeout as "1800s"
	d.approval_timeout in {"1800s", "30m"}
}

test_shipped_settings_load if {
	count(authz.load_errors) == 0
}

lists_without_denied_tools := object.remove(data.agenthelm.lists, ["denied_tools"])

test_missing_setting_is_a_load_error if {
	errs := authz.load_errors with data.agenthelm.lists as lists_without_denied_tools
	errs == {"data.agenthelm.lists.denied_tools is missing (see data.json)"}
}

test_missing_sections_are_load_errors if {
	errs := authz.load_errors
		with data.agenthelm.lists as null
		with data.agenthelm.irreversible as {}
		with data.agenthelm.budget as {}
		with data.agenthelm.payments as {}
	count(errs) == 20
}

test_wrong_setting_types_are_load_errors if {
	errs := authz.load_errors
		with data.agenthelm.budget.hold_above as "1000"
		with data.agenthelm.payments.approval_timeout as "soon"
		with data.agenthelm.lists.denied_tools as "drop_database"
		with data.agenthelm.lists.denied_sql_patterns as [{"pattern": "(unclosed", "reason": "x"}]
	errs == {
		"data.agenthelm.budget.hold_above must be a number",
		"data.agenthelm.lists.denied_tools must be an object of reasons",
		`data.agenthelm.lists.denied_sql_patterns: "(unclosed" is not a valid regular expression`,
		`data.agenthelm.payments.approval_timeout "soon" is not a duration such as "30m"`,
	}
}

test_setting_prefers_the_most_specific_name if {
	tools := {"charge": "any upstream", "payments/charge": "this one", "payments/*": "all of payments"}
	authz.setting(tools) == "this one" with input.tool as {"name": "charge", "upstream": "payments"}
	authz.setting(tools) == "any upstream" with input.tool as {"name": "charge", "upstream": "orders"}
	authz.setting(tools) == "all of payments" with input.tool as {"name": "refund", "upstream": "payments"}
	not authz.setting(tools) with input.tool as {"name": "refund", "upstream": "orders"}
}

test_profile_takes_each_setting_from_its_most_specific_name if {
	p := authz.profile with input.tool as {"name": "run", "upstream": "box"}
		with data.agenthelm.lists.shell_tools as {"box/*": ["cmd"], "run": ["command"]}
		with data.agenthelm.lists.denied_tools as {"box/*": "the sandbox is off"}
		with data.agenthelm.lists.path_tools as {"box/run": ["path"], "run": ["file"]}
		with data.agenthelm.lists.sql_tools as {"other/run": ["sql"]}
	p.shell == ["command"] # "run" is more specific than "box/*"
	p.denied == "the sandbox is off" # only "box/*" names it
	p.path == ["path"] # "box/run" is more specific than "run"
	not p.sql # another upstream's tool
	authz.profile == {} with input.tool as {"name": "unlisted", "upstream": "nowhere"}
}

test_tool_profile_is_the_profile_of_any_tool if {
	authz.tool_profile("payments", "charge_customer") == {"charge": "amount", "spending": "amount"}
	authz.tool_profile("payments", "charge") == {"spending": "amount"} # as "payments/charge"
	authz.tool_profile("stripe", "charge") == {}
	authz.tool_profile("shell", "exec_in_container") == {"shell": ["command", "cmd", "script", "args"]} # as "shell/*"
	authz.tool_profile("nowhere", "unlisted") == {}

	# A "/" may be in an upstream's name or in a tool's.
	p := authz.tool_profile("a", "b/c") with data.agenthelm.lists.denied_tools as {"a/b/c": "slashes"}
	p.denied == "slashes"
	q := authz.tool_profile("a/b", "c") with data.agenthelm.lists.denied_tools as {"a/b/c": "slashes"}
	q.denied == "slashes"
}

test_amount_accepts_numbers_and_numeric_strings if {
	authz.amount({"amount": 12.5}, "amount") == 12.5
	authz.amount({"amount": "12.50"}, "amount") == 12.5
	authz.amount({"amount": "1e3"}, "amount") == 1000
	not authz.amount({"amount": "12 EUR"}, "amount")
	not authz.amount({"amount": true}, "amount")
	not authz.amount({}, "amount")
}
