package engine

import (
	"encoding/json"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// carriedApproval is the approval of a call that the upstream itself
// answered input_required (its own multi-round-trip request, 2026-07-28).
// The client's retry, which presents the upstream's requestState with the
// same tool and arguments, is that call continued: the policy still
// decides it, but a person is not asked a second time.
type carriedApproval struct {
	req     approvals.Request // the approval, as requested: upstream, tool, argument digest
	by      string            // who approved it
	expires time.Time
}

// maxCarried bounds the approvals one saga carries at a time.
const maxCarried = 64

// carryApproval keeps an approval for the retry that an input_required
// result asks the client for, keyed by the upstream's requestState.
func (l *live) carryApproval(result json.RawMessage, c carriedApproval, now time.Time) {
	state := jsonrpc.StringMember(result, "requestState")
	if state == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.carried == nil {
		l.carried = map[string]carriedApproval{}
	}
	for k, old := range l.carried {
		if now.After(old.expires) {
			delete(l.carried, k)
		}
	}
	if len(l.carried) < maxCarried {
		l.carried[sum(state)] = c
	}
}

// takeCarried returns, and forgets, the approval carried for a call that
// presents an upstream's requestState, if the call is the one approved
// (same upstream, tool and arguments) and the approval has not expired.
func (l *live) takeCarried(call *toolcall.Call, digest string, now time.Time) (carriedApproval, bool) {
	state := jsonrpc.StringMember(call.Params, "requestState")
	if state == "" {
		return carriedApproval{}, false
	}
	key := sum(state)
	l.mu.Lock()
	c, ok := l.carried[key]
	delete(l.carried, key) // one retry per state
	l.mu.Unlock()
	if !ok || now.After(c.expires) || c.req.Upstream != call.Upstream || c.req.Tool != call.Tool || c.req.ArgsDigest != digest {
		return carriedApproval{}, false
	}
	return c, true
}
