package compensators

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/saga"
)

// The forward call of a route is a tool call whose arguments are the
// request, {method, path, params, query, headers, body}, and whose result's
// structuredContent is the response, {status, headers, body} (see
// proxy/httptool). A route's compensate block is written over .request,
// .response and .capture, so routeProgram joins its expressions into one
// jq program over the engine's {args, result, capture} that produces the
// compensating request, {method, path, body, headers}. The HTTP tool
// proxy's Invoke sends it.

// responseNames are the names by which a route's expressions read the
// forward call's response.
var responseNames = map[string]bool{"response": true}

// addRoutes adds a rule per route, under its upstream and tool name, and
// compiles the compensation programs, reporting those that do not compile
// by the route's field path. Config validation makes (upstream, tool)
// unique among routes; a later duplicate would replace an earlier one.
func (s *Set) addRoutes(routes []config.Route) []error {
	var errs []error
	for i, r := range routes {
		path := fmt.Sprintf("routes[%d]", i)
		e := entry{Rule: Rule{ReadOnly: r.ReadOnly, Irreversible: r.Irreversible, Idempotent: r.Idempotent,
			ErrorsMayLeaveEffects: r.ErrorsMayLeaveEffects, ContinueOnError: r.OnError == config.OnErrorContinue, Source: "config"}}
		// A route with no compensator is irreversible when a saga unwinds
		// (saga.Plan marks it so), like an MCP tool with no rule.
		if c := r.Compensate; c != nil && !r.ReadOnly && !r.Irreversible {
			e.Compensate = &saga.Compensator{
				Tool:        RouteCompensatorName(c),
				Args:        routeProgram(c),
				NeedsResult: routeNeedsResponse(c),
			}
		}
		if c := e.Compensate; c != nil {
			if _, err := compile(c.Args); err != nil {
				errs = append(errs, fmt.Errorf("%s.compensate: %w", path, err))
			}
		}
		if s.rules[r.Upstream] == nil {
			s.rules[r.Upstream] = map[string]entry{}
		}
		s.rules[r.Upstream][r.Tool] = e
	}
	return errs
}

// routeProgram is the one jq program that builds a route's compensating
// request. Every expression is parenthesized and followed by a line break,
// so that a trailing "# comment" in one cannot swallow the rest.
func routeProgram(c *config.HTTPCall) string {
	var b strings.Builder
	b.WriteString("{request: .args, response: .result.structuredContent, capture: .capture}\n| {method: ")
	b.WriteString(jqString(c.Method))
	b.WriteString(", path: (")
	b.WriteString(c.Path.Source)
	b.WriteString("\n)")
	if !c.Body.IsZero() {
		b.WriteString(", body: (")
		b.WriteString(c.Body.Source)
		b.WriteString("\n)")
	}
	if len(c.Headers) > 0 {
		b.WriteString(", headers: {")
		for i, name := range slices.Sorted(maps.Keys(c.Headers)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(jqString(name))
			b.WriteString(": (")
			b.WriteString(c.Headers[name].Source)
			b.WriteString("\n)")
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.String()
}

// routeNeedsResponse reports whether any of the compensation's expressions
// reads the forward call's response (rule 11: such an undo cannot be built
// for a step whose outcome is unknown).
func routeNeedsResponse(c *config.HTTPCall) bool {
	exprs := []config.Expr{c.Path, c.Body}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		exprs = append(exprs, c.Headers[name])
	}
	for _, e := range exprs {
		if !e.IsZero() && mentionsAny(e.Source, responseNames) {
			return true
		}
	}
	return false
}

// RouteCompensatorName is the name a route's compensation goes by in the
// journal, the CLI and traces: "POST /v1/refunds" when its path is a
// literal, else the method and the path expression ("DELETE
// "/v1/charges/" + .response.body.id").
func RouteCompensatorName(c *config.HTTPCall) string {
	src := strings.TrimSpace(c.Path.Source)
	var lit string
	if err := json.Unmarshal([]byte(src), &lit); err == nil {
		return c.Method + " " + lit
	}
	expr := strings.Join(strings.Fields(src), " ")
	if r := []rune(expr); len(r) > 80 {
		expr = string(r[:77]) + "..."
	}
	return c.Method + " " + expr
}

// jqString writes s as a jq string literal (JSON's syntax, which jq shares).
func jqString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
