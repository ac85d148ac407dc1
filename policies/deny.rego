# Calls that are never allowed, by tool or by what their arguments do.
#
# The settings live in data.agenthelm.lists (data.json) so that they change
# without touching Rego. Tools are named by keys of the form "name" (on any
# upstream), "upstream/name" or "upstream/*" (see profile in authz.rego);
# the value says why a tool is listed, or which of its arguments to check.
# Patterns are RE2 regular expressions (github.com/google/re2/wiki/Syntax),
# each with a reason.
#
# Pattern lists are deny lists and can never be complete: an agent that wants
# to do harm can usually find a spelling they miss. They catch mistakes and
# obvious abuse; the real boundary is what the upstream itself may do (its
# user, its sandbox, its database grants). The path rule is an allow list
# and so is stricter.
package agenthelm.authz

lists := data.agenthelm.lists

# The settings that name tools (see profile in authz.rego), and what they
# say about the called tool (each undefined if nothing). The rules below are
# deny_listed.FAMILY rules: evaluated only for the tools their setting names.
tool_settings.denied := lists.denied_tools

tool_settings.shell := lists.shell_tools

tool_settings.path := lists.path_tools

tool_settings.sql := lists.sql_tools

denied_because := profile.denied

shell_arguments := profile.shell

path_arguments := profile.path

sql_arguments := profile.sql

# Tools nobody may call through agenthelm.
deny_listed.denied contains {
	"rule": "deny.tool",
	"reason": sprintf("%s is denied: %s", [tool_id, why]),
} if {
	why := denied_because
}

# Shell commands. The command line is the tool's listed arguments joined in
# order, so ["rm", "-rf", "/"] split over "command" and "args" is seen as
# one line.
deny_listed.shell contains {
	"rule": "deny.shell_command",
	"reason": sprintf("%s: the command is not allowed: %s", [tool_id, p.reason]),
} if {
	names := shell_arguments # first: most tools are not shells
	line := concat(" ", [text | some name in names; text := as_text(input.arguments[name])])
	some p in lists.denied_command_patterns
	regex.match(p.pattern, line)
}

# as_text renders a string argument, or an array of arguments, as text.
as_text(x) := x if is_string(x)

as_text(x) := concat(" ", [s | some s in x; is_string(s)]) if is_array(x)

# File system paths: an allow list of roots. Every listed argument (a string,
# or an array of strings) must be absolute, free of ".." segments, and
# inside an allowed root. Only top-level arguments are checked: that is where
# file system servers take their paths. (A symbolic link inside a root can
# still lead outside it: confine the server itself too.)
deny_listed.path contains outside_roots(path) if {
	some path in path_values
	is_string(path)
	not path_allowed(path)
}

deny_listed.path contains outside_roots(path) if {
	some paths in path_values
	is_array(paths)
	some path in paths
	is_string(path)
	not path_allowed(path)
}

outside_roots(path) := {
	"rule": "deny.path",
	"reason": sprintf("%s: path %q is outside the allowed roots (%s)", [
		tool_id, path,
		concat(", ", lists.allowed_path_roots),
	]),
}

# path_values are the listed arguments the call has.
path_values := object.filter(input.arguments, path_arguments) if is_object(input.arguments)

# path_allowed(path): absolute, below an allowed root or one itself
# ("/workspace/a" is below "/workspace" and "/workspace/",
# "/workspace-evil/a" is below neither), and without a ".." segment (as in
# "/a/../b"; "/a/..b" is a name).
path_allowed(path) if {
	startswith(path, "/")
	not regex.match(`(^|/)\.\.(/|$)`, path)
	strings.any_prefix_match(path, root_prefixes)
} else if {
	startswith(path, "/")
	not regex.match(`(^|/)\.\.(/|$)`, path)
	path in lists.allowed_path_roots
}

# root_prefixes are the roots with one trailing "/": computed once per
# policy revision (they depend only on data).
root_prefixes := {concat("", [trim_right(root, "/"), "/"]) | some root in lists.allowed_path_roots}

# SQL statements, as sent and with comments blanked out (so that
# DROP/**/TABLE is seen as DROP TABLE; the text as sent is checked too, as
# "--" inside a string literal is not a comment). A match inside a string
# literal denies too: erring on the safe side.
deny_listed.sql contains {
	"rule": "deny.sql",
	"reason": sprintf("%s: the SQL statement is not allowed: %s", [tool_id, p.reason]),
} if {
	some name in sql_arguments
	sql := input.arguments[name]
	is_string(sql)
	some statement in [sql, regex.replace(sql, `/\*[\s\S]*?\*/|--[^\n]*`, " ")]
	some p in lists.denied_sql_patterns
	regex.match(p.pattern, statement)
}
