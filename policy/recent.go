package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// input.saga.recent_calls counts, per tool, the saga's calls of the last
// minute, so that a rate limit looks up one number instead of going
// through the step list on every call (and counts every step of the saga,
// not only the latest ones the list holds). It is an object keyed by
// "<upstream>/<tool>", as the shipped policies' tool_id spells a tool.

// RecentWindowSeconds is the window of input.saga.recent_calls: an earlier
// step counts when input.time.unix minus its unix time is less than this.
const RecentWindowSeconds = 60

// CountRecent builds input.saga.recent_calls from steps as of now (unix
// seconds): the steps whose unix time is within RecentWindowSeconds of now
// and whose status is not denied (they never reached the upstream),
// counted by "<upstream>/<tool>". Only Upstream, Tool, Status and Unix of
// the steps are read. The result is never nil.
func CountRecent(steps []StepSummary, now int64) map[string]int {
	out := map[string]int{}
	for i := range steps {
		s := &steps[i]
		if InRecentWindow(s.Unix, now) && CountsAsRecent(s.Status) {
			out[RecentKey(s.Upstream, s.Tool)]++
		}
	}
	return out
}

// The rules of recent_calls, for an engine that keeps the counts as the
// window slides instead of calling CountRecent on every call:

// InRecentWindow reports whether a step called at stepUnix is within the
// window as of now.
func InRecentWindow(stepUnix, now int64) bool { return now-stepUnix < RecentWindowSeconds }

// CountsAsRecent reports whether a step of this status counts: denied ones
// never reached the upstream.
func CountsAsRecent(status string) bool { return status != StepDenied }

// RecentKey is a tool's key in recent_calls.
func RecentKey(upstream, tool string) string { return upstream + "/" + tool }

// noRecent is the recent_calls of a saga with none; shared, as AST values
// are never changed once built.
var noRecent = ast.NewObject()

// recentValue converts recent_calls.
func recentValue(rs map[string]int) ast.Value {
	if len(rs) == 0 {
		return noRecent
	}
	kv := make([][2]*ast.Term, 0, len(rs))
	for k, n := range rs {
		kv = append(kv, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(intValue(int64(n)))})
	}
	return ast.NewObject(kv...)
}
