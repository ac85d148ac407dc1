# Calls that are never allowed, by tool or by what their arguments do.
#
# The settings live in data.agenthelm.lists (data.json) so that they change
# without touching Rego. Tools are named by keys of the form "name" (on any
# upstream), "upstream/name" or "upstream/*" (see setting in authz.rego);
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

# What the lists say about the called tool (each undefined if nothing).
denied_because := setting(lists.denied_tools)

shell_arguments := setting(lists.shell_tools)

path_arguments := setting(lists.path_tools)

sql_arguments := setting(lists.sql_tools)

# Tools nobody may call through agenthelm.
deny contains {
	"rule": "deny.tool",
	"reason": sprintf("%s is denied: %s", [tool_id, why]),
} if {
	why := denied_because
}

# Shell commands. The command line is the tool's listed arguments joined in
# order, so ["rm", "-rf", "/"] split over "command" and "args" is seen as
# one line.
deny contains {
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
deny contains {
	"rule": "deny.path",
	"reason": sprintf("%s: path %q is outside the allowed roots (%s)", [
		tool_id, path,
		concat(", ", lists.allowed_path_roots),
	]),
} if {
	some name in path_arguments
	some path in as_paths(input.arguments[name])
	not path_allowed(path)
}

as_paths(x) := [x] if is_string(x)

as_paths(x) := [s | some s in x; is_string(s)] if is_array(x)

path_allowed(path) if {
	startswith(path, "/")
	not ".." in split(path, "/")
	some root in lists.allowed_path_roots
	inside(path, root)
}

inside(path, root) if path == root

inside(path, root) if startswith(path, concat("", [trim_right(root, "/"), "/"]))

# SQL statements, as sent and with comments blanked out (so that
# DROP/**/TABLE is seen as DROP TABLE; the text as sent is checked too, as
# "--" inside a string literal is not a comment). A match inside a string
# literal denies too: erring on the safe side.
deny contains {
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
