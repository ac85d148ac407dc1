# agenthelm authorization policy: the decision.
#
# agenthelm evaluates data.agenthelm.authz.decision for every tool call and
# expects an object:
#
#   allow             bool      forward the call now
#   require_approval  bool      hold the call until a person approves it
#   reasons           [string]  why; shown to the agent, approvers and the journal
#   approvers         [string]  who may approve a held call (empty: configured default)
#   approval_timeout  string    how long a held call waits, e.g. "30m" (empty: default)
#   labels            {string: string}  copied to the journal and traces
#
# The other files of this package only add entries to two sets:
#
#   deny contains {"rule": "...", "reason": "..."}
#   hold contains {"rule": "...", "reason": "...", "approvers": [...], "approval_timeout": "30m"}
#
# and this file composes them: any deny wins over any hold, any hold wins
# over allow, and a call that no rule objects to is allowed. To add a rule,
# add a file that contributes to deny or hold (and its _test.rego); this file
# need not change.
#
# Every case below is spelled out and there is a default, so the decision is
# never undefined. (An undefined decision, or an error while evaluating, also
# denies: agenthelm fails closed. But a deny that says why is better than
# one that says "undefined".) Settings come from data.agenthelm (data.json)
# and are checked once, at load time, by load_errors below.
#
# agenthelm evaluates this for every call, so the rules are written to fail
# fast: each rule body starts with a cheap lookup (is this tool in my list?
# see profile) that is false for most calls; what depends only on the
# settings is computed in rules that do not read input, which agenthelm
# evaluates once per policy revision, and what depends only on the called
# tool (profile, tool_id) in rules that read no other input, which it
# evaluates once per tool. See "Performance" in docs/POLICY.md.
package agenthelm.authz

# The cases, most severe first: the first one that holds decides (an else
# chain stops there). deny[_] holds if deny has any element.
#
# Any deny: deny reasons first, then hold reasons, so that an agent learns
# everything that stands in its way at once.
decision := {
	"allow": false,
	"require_approval": false,
	"reasons": array.concat(sort([d.reason | some d in deny]), sort([h.reason | some h in hold])),
	"approvers": [],
	"approval_timeout": "",
	"labels": labels,
} if {
	deny[_]
} else := {
	# A single hold, the usual case, is its own decision. (Its
	# approval_timeout is passed on as it is: agenthelm checks the
	# timeout of every decision, and a malformed one fails closed.)
	"allow": false,
	"require_approval": true,
	"reasons": [h.reason],
	"approvers": sort({a | some a in h.approvers}),
	"approval_timeout": h.approval_timeout,
	"labels": {"rules": h.rule},
} if {
	count(hold) == 1
	some h in hold
} else := {
	# Several holds: everyone named by any hold may approve, and the
	# shortest timeout of all holds applies.
	"allow": false,
	"require_approval": true,
	"reasons": sort([h.reason | some h in hold]),
	"approvers": sort({a | some h in hold; some a in h.approvers}),
	"approval_timeout": shortest_timeout,
	"labels": {"rules": concat(",", {h.rule | some h in hold})},
} if {
	hold[_]
} else := {
	# Nothing objects: allow.
	"allow": true,
	"require_approval": false,
	"reasons": [],
	"approvers": [],
	"approval_timeout": "",
	"labels": {},
}

# A safety net: should a bug leave every case above undefined, agenthelm
# still gets a well-formed deny.
default decision := {
	"allow": false,
	"require_approval": false,
	"reasons": ["agenthelm.authz: no decision could be computed (a bug in the policy)"],
	"approvers": [],
	"approval_timeout": "",
	"labels": {},
}

# deny and hold are filled by the rule files, in two ways:
#
#   - deny contains ... / hold contains ...: evaluated for every call. Start
#     the body with its most selective cheap condition.
#   - deny_listed.FAMILY contains ... / hold_listed.FAMILY contains ...: rules
#     about the tools that a setting registered as tool_settings.FAMILY names
#     (see profile). They are evaluated only for the families in the called
#     tool's profile: a call pays nothing for the rules about tools it is
#     not.
#
# These two rules do the second kind. (They name deny_listed and hold_listed
# by their full paths, so that authz.rego compiles on its own, whichever rule
# files are present.)
deny contains d if {
	some family, _ in profile
	some d in data.agenthelm.authz.deny_listed[family]
}

hold contains h if {
	some family, _ in profile
	some h in data.agenthelm.authz.hold_listed[family]
}

# shortest_timeout is the shortest approval_timeout of the holds that set
# one; of equal durations spelled differently ("30m", "1800s"), that of the
# first hold in set order. Sorting [duration, hold, timeout] triples finds
# it in one pass.
default shortest_timeout := ""

shortest_timeout := by_duration[0][2] if {
	by_duration := sort([[time.parse_duration_ns(t), h, t] |
		some h in hold
		t := h.approval_timeout
		t != ""
	])
}

# labels.rules names the rules that matched, for traces and the journal:
# "budget.hard_limit,deny.sql".
labels := {"rules": concat(",", {r.rule | some r in deny} | {r.rule | some r in hold})}

# Helpers shared by the rule files.

# tool_id is how messages name the called tool: "upstream/name". (It has a
# default: a reason that fails to render would drop its rule.)
default tool_id := "(unnamed tool)"

tool_id := concat("/", [input.tool.upstream, input.tool.name])

# profile is what the settings that name tools say about the called tool,
# by family: {"path": ["path", "paths", ...]} for a filesystem tool, {} for
# most tools. Each rule file registers the settings it reads as
# tool_settings.FAMILY; for each family the most specific of the tool's
# names wins, as in setting(). It reads only input.tool, so agenthelm
# computes it once per tool.
profile := tool_profile(input.tool.upstream, input.tool.name)

# tool_profile(upstream, name) is the profile of any tool, such as that of
# an earlier step: one to three lookups in tables computed once per policy
# revision. Most tools are named by a single key; tool_profiles holds the
# merged profiles of the others, so that the first lookup that finds the
# tool is its whole profile.
tool_profile(upstream, name) := p if {
	p := tool_profiles[upstream][name]
} else := p if {
	p := tool_index[name]
} else := p if {
	p := tool_index[concat("/", [upstream, "*"])]
} else := {}

# tool_index maps every key of every registered setting to what each setting
# holds under it: {"filesystem/*": {"path": [...]}, ...}. It depends only on
# data, so agenthelm computes it once per policy revision, not per call.
tool_index := {key: entries |
	some tools in data.agenthelm.authz.tool_settings
	some key, _ in tools
	entries := {family: value | some family, t in data.agenthelm.authz.tool_settings; value := t[key]}
}

# tool_profiles[upstream][name] is the profile of every tool that an
# "upstream/name" key names, or that an "upstream/*" key and a "name" key
# both name: it is computed for every upstream and name the keys mention,
# combined. Any other tool is named by one key at most, which tool_profile
# looks up directly. Like tool_index, it depends only on data.
tool_profiles := {upstream: {name: p |
	some name in key_names
	p := object.union_n([
		object.get(tool_index, concat("/", [upstream, "*"]), {}), # least specific first: union_n keeps the last
		object.get(tool_index, name, {}),
		object.get(tool_index, concat("/", [upstream, name]), {}),
	])
	p != {}
} |
	some upstream in key_upstreams
}

# key_splits are the [upstream, name] pairs that keys containing a "/"
# can stand for, split at each "/" (a tool name may hold one too).
key_splits := {[substring(key, 0, i), substring(key, i + 1, -1)] |
	some key, _ in tool_index
	some i in indexof_n(key, "/")
}

key_upstreams := {upstream | some [upstream, _] in key_splits}

key_names := {name | some [_, name] in key_splits} | {key | some key, _ in tool_index}

# tool_names are the keys under which settings may name the called tool,
# most specific first: "upstream/name", "name" (on any upstream), and
# "upstream/*" (every tool of the upstream).
tool_names := [
	concat("/", [input.tool.upstream, input.tool.name]),
	input.tool.name,
	concat("/", [input.tool.upstream, "*"]),
]

# setting(tools) is the value that tools, an object keyed by tool names,
# holds for the called tool under its most specific name; undefined if it
# does not name the tool. (The shipped rules read profile instead, which
# does this for all registered settings at once.)
setting(tools) := value if {
	value := tools[tool_names[0]]
} else := value if {
	value := tools[tool_names[1]]
} else := value if {
	value := tools[tool_names[2]]
}

# amount(args, name) is the number in argument name: a JSON number, or a
# string holding one ("12.50"), since many payment APIs take both. It is
# undefined when the argument is absent or holds anything else; rules that
# care deny that case explicitly rather than skip the check.
amount(args, name) := number_of(args[name])

# number_of(x) is x as a number, if it is one or a string holding one.
# (agenthelm reads the amounts of input.saga.amounts the same way.)
number_of(x) := x if {
	is_number(x)
} else := to_number(x) if {
	is_string(x)
	regex.match(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`, x)
}

# load_errors is checked once, when agenthelm loads this directory, with the
# data but without an input: a revision with load errors is rejected like
# one that does not compile (the previous revision keeps deciding; at
# startup agenthelm refuses to start). Settings are checked here rather
# than on every call.
#
# A rule that reads a missing setting silently matches nothing, so every
# setting the rules read is required, and checked for its type.
load_errors contains sprintf("data.agenthelm.%s.%s is missing (see data.json)", [section, key]) if {
	some section, types in setting_types
	some key, _ in types
	not has_setting(section, key)
}

load_errors contains sprintf("data.agenthelm.%s.%s must be %s", [section, key, type]) if {
	some section, types in setting_types
	some key, type in types
	value := settings[section][key]
	not has_type(value, type)
}

load_errors contains sprintf("data.agenthelm.%s.approval_timeout %q is not a duration such as \"30m\"", [section, t]) if {
	some section in ["irreversible", "budget", "payments"]
	t := settings[section].approval_timeout
	is_string(t)
	not regex.match(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, t)
}

load_errors contains sprintf("data.agenthelm.lists.%s: %q is not a valid regular expression", [list, p.pattern]) if {
	some list in ["denied_command_patterns", "denied_sql_patterns"]
	some p in settings.lists[list]
	not regex.is_valid(p.pattern)
}

setting_types := {
	"lists": {
		"denied_tools": "an object of reasons",
		"approval_exempt_tools": "an object of reasons",
		"shell_tools": "an object of argument name lists",
		"denied_command_patterns": "a list of {pattern, reason}",
		"path_tools": "an object of argument name lists",
		"allowed_path_roots": "a list of strings",
		"sql_tools": "an object of argument name lists",
		"denied_sql_patterns": "a list of {pattern, reason}",
	},
	"irreversible": {"approvers": "a list of strings", "approval_timeout": "a string"},
	"budget": {
		"tools": "an object of argument names",
		"hold_above": "a number",
		"deny_above": "a number",
		"approvers": "a list of strings",
		"approval_timeout": "a string",
		"max_calls_per_minute": "a number",
	},
	"payments": {
		"charge_tools": "an object of argument names",
		"approval_above": "a number",
		"approvers": "a list of strings",
		"approval_timeout": "a string",
	},
}

# settings are the sections, named one by one: a dynamic
# data.agenthelm[section] would also reach this package's own rules
# (data.agenthelm.authz).
settings["lists"] := data.agenthelm.lists

settings["irreversible"] := data.agenthelm.irreversible

settings["budget"] := data.agenthelm.budget

settings["payments"] := data.agenthelm.payments

has_setting(section, key) if _ = settings[section][key]

has_type(x, "a string") if is_string(x)

has_type(x, "a number") if is_number(x)

has_type(x, "a list of strings") if {
	is_array(x)
	every e in x { is_string(e) }
}

has_type(x, "a list of {pattern, reason}") if {
	is_array(x)
	every p in x {
		is_string(p.pattern)
		is_string(p.reason)
	}
}

has_type(x, "an object of reasons") if {
	is_object(x)
	every _, v in x { is_string(v) }
}

has_type(x, "an object of argument names") if {
	is_object(x)
	every _, v in x { is_string(v) }
}

has_type(x, "an object of argument name lists") if {
	is_object(x)
	every _, v in x {
		is_array(v)
		every e in v { is_string(e) }
	}
}
