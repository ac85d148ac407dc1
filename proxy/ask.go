package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// errNoAsk: the agent's client cannot be asked (it did not declare the
// capability, or its stream is gone).
var errNoAsk = errors.New("the agent's client cannot be asked")

// ask sends a request of agenthelm's own to the agent, on the stream of
// the call it concerns (so a streamable HTTP client sees it on that POST's
// stream), and waits for the agent's answer. It is how a held call asks
// for approval inside the client (elicitation/create).
func (s *Session) ask(ctx context.Context, out sink, method string, params json.RawMessage) (toolcall.Result, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return toolcall.Result{}, errSessionFinished
	}
	s.nextID++
	id, _ := jsonrpc.Marshal("agenthelm-ask-" + strconv.FormatInt(s.nextID, 10))
	key := jsonrpc.IDKey(id)
	if s.asks == nil {
		s.asks = map[string]chan *jsonrpc.Message{}
	}
	reply := make(chan *jsonrpc.Message, 1)
	s.asks[key] = reply
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.asks, key)
		s.mu.Unlock()
	}()
	if !out.st.push(jsonrpc.NewRequest(id, method, params), false) {
		return toolcall.Result{}, errNoAsk
	}
	select {
	case m := <-reply:
		return toolcall.Result{Result: m.Result, Error: m.Error}, nil
	case <-ctx.Done():
		return toolcall.Result{}, ctx.Err()
	case <-s.ctx.Done():
		return toolcall.Result{}, errSessionFinished
	}
}

// answerAsk delivers the agent's response to one of agenthelm's own
// requests. It reports false for a response meant for the upstream.
func (s *Session) answerAsk(msg *jsonrpc.Message) bool {
	s.mu.Lock()
	reply, ok := s.asks[msg.IDKey()]
	s.mu.Unlock()
	if ok {
		select {
		case reply <- msg:
		default:
		}
	}
	return ok
}
