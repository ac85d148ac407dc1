package policy

import (
	"cmp"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// input.saga.recent_calls counts, per tool, the saga's calls of the last
// minute, so that a rate limit reads a few counts instead of going
// through the step list on every call (and counts every step of the saga,
// not only the latest ones the list holds).

// RecentWindowSeconds is the window of input.saga.recent_calls: an earlier
// step counts when input.time.unix minus its unix time is less than this.
const RecentWindowSeconds = 60

// RecentCalls is one entry of input.saga.recent_calls: how many of the
// saga's earlier steps called one tool within the last minute, not counting
// denied ones (they never reached the upstream).
type RecentCalls struct {
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	Calls    int    `json:"calls"`
}

// CountRecent builds input.saga.recent_calls from steps as of now (unix
// seconds): the steps whose unix time is within RecentWindowSeconds of now
// and whose status is not denied, counted by upstream and tool, ordered by
// upstream and tool. Only Upstream, Tool, Status and Unix of the steps are
// read. The result is never nil.
func CountRecent(steps []StepSummary, now int64) []RecentCalls {
	out := []RecentCalls{}
	for i := range steps {
		s := &steps[i]
		if now-s.Unix >= RecentWindowSeconds || s.Status == StepDenied {
			continue
		}
		j := slices.IndexFunc(out, func(r RecentCalls) bool { return r.Tool == s.Tool && r.Upstream == s.Upstream })
		if j < 0 {
			out = append(out, RecentCalls{Upstream: s.Upstream, Tool: s.Tool})
			j = len(out) - 1
		}
		out[j].Calls++
	}
	slices.SortFunc(out, func(a, b RecentCalls) int {
		return cmp.Or(cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.Tool, b.Tool))
	})
	return out
}

// noRecent is the recent_calls of a saga with none; shared, as AST values
// are never changed once built.
var noRecent = ast.NewArray()

// recentValue converts recent_calls.
func recentValue(rs []RecentCalls) ast.Value {
	if len(rs) == 0 {
		return noRecent
	}
	terms := make([]*ast.Term, len(rs))
	for i, r := range rs {
		terms[i] = ast.ObjectTerm(
			item("upstream", ast.String(r.Upstream)),
			item("tool", ast.String(r.Tool)),
			item("calls", intValue(int64(r.Calls))),
		)
	}
	return ast.NewArray(terms...)
}
