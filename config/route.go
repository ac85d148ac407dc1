package config

import (
	"fmt"
	"regexp"
	"strings"
)

// paramName is the name inside a route path placeholder, {name}.
var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ReservedToolPrefix starts the names of agenthelm's own control tools
// (agenthelm_commit, agenthelm_rollback); a route may not use it.
const ReservedToolPrefix = "agenthelm_"

// checkRoutePath checks the segments of a route path that starts with "/"
// and has no query: a placeholder is a whole segment, {name}, with a name
// used once; "." and ".." segments are refused, since agents' paths are
// matched as sent and never normalized. It returns the path's shape, the
// path with every placeholder written {}, which says which requests it
// matches.
func checkRoutePath(path string) (shape string, err error) {
	segs := strings.Split(path[1:], "/")
	seen := map[string]bool{}
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return "", fmt.Errorf("%q has a %q segment: request paths are matched as sent, never normalized, so it would never match", path, s)
		case !strings.ContainsAny(s, "{}"):
			continue
		}
		name, ok := strings.CutPrefix(s, "{")
		name, ok2 := strings.CutSuffix(name, "}")
		if !ok || !ok2 || !paramName.MatchString(name) {
			return "", fmt.Errorf("%q: a placeholder is a whole segment, {name}, its name made of letters, digits and _ (got %q)", path, s)
		}
		if seen[name] {
			return "", fmt.Errorf("%q uses the placeholder {%s} twice", path, name)
		}
		seen[name] = true
		segs[i] = "{}"
	}
	return "/" + strings.Join(segs, "/"), nil
}
