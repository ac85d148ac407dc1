package upstream

import (
	"encoding/json"
	"sync"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// pending tracks the requests sent on a shared channel (stdio, legacy SSE)
// that still wait for their response, so that they can be failed when the
// channel goes away instead of waiting forever.
type pending struct {
	mu      sync.Mutex
	ids     map[string]json.RawMessage // IDKey -> id as sent
	drained bool
}

// add records a request about to be sent. It reports false once the
// requests were drained: the conn is gone and the request must not be sent.
func (p *pending) add(id json.RawMessage) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drained {
		return false
	}
	if p.ids == nil {
		p.ids = make(map[string]json.RawMessage)
	}
	p.ids[jsonrpc.IDKey(id)] = id
	return true
}

// remove forgets a request, reporting whether it was still waiting (it is
// not once its response arrived or the requests were drained).
func (p *pending) remove(id json.RawMessage) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := jsonrpc.IDKey(id)
	_, ok := p.ids[key]
	delete(p.ids, key)
	return ok
}

// drain returns every request still waiting and forgets them; later adds
// are refused.
func (p *pending) drain() []json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drained = true
	out := make([]json.RawMessage, 0, len(p.ids))
	for _, id := range p.ids {
		out = append(out, id)
	}
	p.ids = nil
	return out
}
