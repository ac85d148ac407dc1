package httptool

import (
	"fmt"
	"net/url"
	"strings"
)

// Route makes the requests that match it tool calls. Path is matched
// segment by segment against the request path as the agent sent it
// (never normalized, percent-encoding kept); a segment written {name}
// matches any one non-empty segment except "." and ".." (also when
// percent-encoded), and the segment is params[name]. Where several routes
// match, the one whose first differing segment is literal wins.
type Route struct {
	Upstream string
	Method   string
	Path     string
	Tool     string
}

// segment is one segment of a route path: a literal, or a placeholder
// when param is set.
type segment struct {
	lit, param string
}

type pattern struct {
	route Route
	segs  []segment
}

// router finds the route of a request.
type router struct {
	routes map[string][]*pattern // upstream + " " + method -> patterns
}

func newRouter(routes []Route) (*router, error) {
	r := &router{routes: map[string][]*pattern{}}
	for i, rt := range routes {
		segs, err := parsePattern(rt.Path)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		key := rt.Upstream + " " + rt.Method
		r.routes[key] = append(r.routes[key], &pattern{route: rt, segs: segs})
	}
	return r, nil
}

// parsePattern splits a route path into segments. Config validation
// reports the same errors with the field's line; this is the last guard.
func parsePattern(path string) ([]segment, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q must start with /", path)
	}
	parts := strings.Split(path[1:], "/")
	segs := make([]segment, len(parts))
	for i, s := range parts {
		if !strings.ContainsAny(s, "{}") {
			segs[i] = segment{lit: s}
			continue
		}
		if len(s) < 3 || s[0] != '{' || s[len(s)-1] != '}' || strings.ContainsAny(s[1:len(s)-1], "{}") {
			return nil, fmt.Errorf("path %q: a placeholder is a whole segment, {name}", path)
		}
		segs[i] = segment{param: s[1 : len(s)-1]}
	}
	return segs, nil
}

// match returns the route for a request to upstream with method and path
// (starting with "/"), and the values of its placeholders; nil if none
// matches.
func (r *router) match(upstream, method, path string) (*Route, map[string]string) {
	cands := r.routes[upstream+" "+method]
	if len(cands) == 0 {
		return nil, nil
	}
	parts := strings.Split(path[1:], "/")
	var best *pattern
	for _, p := range cands {
		if p.matches(parts) && (best == nil || p.moreSpecific(best)) {
			best = p
		}
	}
	if best == nil {
		return nil, nil
	}
	params := map[string]string{}
	for i, s := range best.segs {
		if s.param != "" {
			params[s.param] = parts[i]
		}
	}
	return &best.route, params
}

func (p *pattern) matches(parts []string) bool {
	if len(parts) != len(p.segs) {
		return false
	}
	for i, s := range p.segs {
		if s.param == "" {
			if parts[i] != s.lit {
				return false
			}
		} else if !placeholderValue(parts[i]) {
			return false
		}
	}
	return true
}

// moreSpecific reports whether p beats q, both matching the same path:
// at the first segment where one is literal and the other a placeholder,
// the literal wins.
func (p *pattern) moreSpecific(q *pattern) bool {
	for i := range p.segs {
		pl, ql := p.segs[i].param == "", q.segs[i].param == ""
		if pl != ql {
			return pl
		}
	}
	return false
}

// placeholderValue reports whether a request path segment may fill a
// placeholder: it is not empty, and neither it nor its decoded form is
// "." or ".." (an upstream that normalizes paths would climb out of the
// route's prefix). A segment with a malformed escape does not match.
func placeholderValue(seg string) bool {
	if seg == "" || seg == "." || seg == ".." {
		return false
	}
	if !strings.Contains(seg, "%") {
		return true
	}
	dec, err := url.PathUnescape(seg)
	return err == nil && dec != "." && dec != ".."
}
