//lint:file-ignore SA1019 the suite exercises sampling, logging and roots on purpose: clients still use them during their deprecation window

package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Scenarios against server-everything 2026.8.31. Tool, prompt and resource
// names are the ones it lists.
var everythingScenarios = []scenario{
	{"initialize", "initialize, capabilities, serverInfo, ping", scInitialize},
	{"tools-list", "tools/list", func(ctx context.Context, s *session, o *obs) error {
		return listToolsUntil(ctx, s, o, "echo", "get-sum", "trigger-long-running-operation",
			"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list")
	}},
	{"echo", "tools/call echo (and invalid arguments)", scEcho},
	{"add", "tools/call get-sum", scSum},
	{"content-types", "tools/call: structured, image, annotated, resource links, embedded resource", scContentTypes},
	{"unknown-tool", "tools/call of an unknown tool", scUnknownTool},
	{"large-message", "tools/call echo with a 1 MiB argument", scLarge},
	{"concurrent", "16 concurrent calls, 2 concurrent progress streams", scConcurrent},
	{"progress", "progress notifications (string and integer tokens)", scProgress},
	{"cancellation", "notifications/cancelled: no late result, session usable", scCancel},
	{"resources", "resources/list, templates/list, read (text, blob, unknown)", scResources},
	{"subscribe", "resources/subscribe, notifications/resources/updated, unsubscribe", scSubscribe},
	{"prompts", "prompts/list, prompts/get with arguments", scPrompts},
	{"completion", "completion/complete (prompt and resource template)", scComplete},
	{"logging", "logging/setLevel, notifications/message, level filtering", scLogging},
	{"sampling", "sampling/createMessage (server to client)", scSampling},
	{"elicitation", "elicitation/create (server to client)", scElicitation},
	{"roots", "roots/list (server to client) and get-roots-list", scRoots},
	{"roots-changed", "notifications/roots/list_changed (client to server), roots/list again", scRootsChanged},
	{"unknown-method", "unknown method: JSON-RPC error", scUnknownMethod},
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func scEcho(ctx context.Context, s *session, o *obs) error {
	// HTML characters, non-ASCII, a JSON escape and U+2028 (a line separator
	// in JavaScript): all must arrive as written.
	msg := "héllo <b>&amp;</b> ✓ \"quoted\" \u2028 \\ end"
	res, err := o.callTool(ctx, s, "echo", "echo", map[string]any{"message": msg})
	if err != nil {
		return err
	}
	if got, want := resultText(res), "Echo: "+msg; got != want {
		return fmt.Errorf("echo = %q, want %q", got, want)
	}
	// Invalid arguments are a tool error (isError), not a protocol error.
	res, err = o.callTool(ctx, s, "echo without message", "echo", map[string]any{"msg": 1})
	if err != nil {
		return err
	}
	if !res.IsError {
		return fmt.Errorf("echo without message: isError false, want true: %q", resultText(res))
	}
	return nil
}

func scLarge(ctx context.Context, s *session, o *obs) error {
	msg := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
	if err != nil {
		return fmt.Errorf("tools/call echo: %w", err)
	}
	if got := resultText(res); got != "Echo: "+msg {
		return fmt.Errorf("echo of 1 MiB came back with %d bytes", len(got))
	}
	o.addValue("echo 1 MiB", len(resultText(res)))
	return nil
}

// progressOf finds the client request carrying progress token tok, its
// response, and the progress values for tok in between, checking order.
func progressOf(frames []*frame, tok any) (req, resp *frame, seen []string, c checks) {
	want, _ := json.Marshal(tok)
	for _, f := range frames {
		if f.dir != toServer || f.method != "tools/call" {
			continue
		}
		var p struct {
			Meta struct {
				Token json.RawMessage `json:"progressToken"`
			} `json:"_meta"`
		}
		if json.Unmarshal(f.params, &p) == nil && string(p.Meta.Token) == string(want) {
			req = f
		}
	}
	if req == nil {
		c.expect(false, "no tools/call with progress token %s on the wire", want)
		return
	}
	for _, f := range frames[req.seq+1:] {
		if f.dir == toClient && f.isResponse() && idKey(f.id) == idKey(req.id) {
			resp = f
			break
		}
	}
	if resp == nil {
		c.expect(false, "no response to the call with progress token %s", want)
		return
	}
	last := -1.0
	for _, f := range frames[req.seq+1:] {
		if f.dir != toClient || f.method != "notifications/progress" {
			continue
		}
		var pp struct {
			Token    json.RawMessage `json:"progressToken"`
			Progress float64         `json:"progress"`
			Total    float64         `json:"total"`
		}
		if err := json.Unmarshal(f.params, &pp); err != nil {
			c.expect(false, "bad progress notification %s", f.raw)
			continue
		}
		if string(pp.Token) != string(want) {
			continue // another call's, or a rewritten token (caught by the count)
		}
		c.expect(f.seq < resp.seq, "progress %v for token %s arrived after the result", pp.Progress, want)
		c.expect(pp.Progress > last, "progress for token %s went from %v to %v", want, last, pp.Progress)
		last = pp.Progress
		seen = append(seen, fmt.Sprintf("%v/%v", pp.Progress, pp.Total))
	}
	return req, resp, seen, c
}

func scConcurrent(ctx context.Context, s *session, o *obs) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs checks
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("concurrent-%02d", i)
			res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
			if err != nil {
				fail(fmt.Errorf("echo %s: %w", msg, err))
			} else if got := resultText(res); got != "Echo: "+msg {
				fail(fmt.Errorf("echo %s answered %q (answers mixed up?)", msg, got))
			}
		}()
	}
	steps := map[string]int{"concurrent-a": 3, "concurrent-b": 2}
	for tok, n := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &mcp.CallToolParams{Name: "trigger-long-running-operation",
				Arguments: map[string]any{"duration": 0.1 * float64(n), "steps": n}}
			p.SetProgressToken(tok)
			if _, err := s.cs.CallTool(ctx, p); err != nil {
				fail(fmt.Errorf("progress call %s: %w", tok, err))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs.err()
	}
	for _, tok := range sortedKeys(steps) {
		_, resp, seen, c := progressOf(snapshotFrames(s), tok)
		errs = append(errs, c...)
		errs.expect(len(seen) == steps[tok], "token %s: progress %v, want %d notifications before its result", tok, seen, steps[tok])
		o.addValue("progress "+tok, seen)
		if resp != nil {
			o.add("result "+tok, resp.result)
		}
	}
	return errs.err()
}

// scCancel cancels a long call after its first progress notification. The
// client must get control back; the server (told through
// notifications/cancelled) must not deliver a result for it later; the
// session must stay usable.
func scCancel(ctx context.Context, s *session, o *obs) error {
	const tok = "cancel-me"
	from := s.w.len()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		p := &mcp.CallToolParams{Name: "trigger-long-running-operation", Arguments: map[string]any{"duration": 1.2, "steps": 3}}
		p.SetProgressToken(tok)
		_, err := s.cs.CallTool(cctx, p)
		done <- err
	}()
	if _, err := s.wireNotification(ctx, from, "notifications/progress", `"`+tok+`"`); err != nil {
		return fmt.Errorf("first progress notification: %w", err)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			return fmt.Errorf("the cancelled call returned a result")
		}
	case <-ctx.Done():
		return fmt.Errorf("the cancelled call did not return: %w", ctx.Err())
	}
	req, _, _, _ := progressOf(snapshotFrames(s), tok)
	if req == nil {
		return fmt.Errorf("no request with token %s on the wire", tok)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := s.w.waitFrame(wctx, req.seq, func(f *frame) bool {
		return f.dir == toServer && f.method == "notifications/cancelled" && strings.Contains(string(f.params), string(req.id))
	}); err != nil {
		return fmt.Errorf("the client sent no notifications/cancelled: %w", err)
	}
	// A call started now ends after the cancelled one would have; by then a
	// result for the cancelled call, if the server still sent one, is here.
	if _, err := o.callTool(ctx, s, "a later call", "trigger-long-running-operation", map[string]any{"duration": 1.3, "steps": 1}); err != nil {
		return err
	}
	late := "none"
	for _, f := range snapshotFrames(s)[req.seq+1:] {
		if f.dir == toClient && f.isResponse() && idKey(f.id) == idKey(req.id) {
			late = string(f.raw)
		}
	}
	o.addValue("result delivered for the cancelled call", late)
	if late != "none" {
		return fmt.Errorf("a result for the cancelled call arrived: %s", late)
	}
	return s.cs.Ping(ctx, nil)
}

func scSum(ctx context.Context, s *session, o *obs) error {
	res, err := o.callTool(ctx, s, "get-sum", "get-sum", map[string]any{"a": 2, "b": 40.5})
	if err != nil {
		return err
	}
	if got, want := resultText(res), "The sum of 2 and 40.5 is 42.5."; got != want {
		return fmt.Errorf("get-sum = %q, want %q", got, want)
	}
	return nil
}

func scContentTypes(ctx context.Context, s *session, o *obs) error {
	var c checks
	res, err := o.callTool(ctx, s, "get-structured-content", "get-structured-content", map[string]any{"location": "Chicago"})
	if err != nil {
		return err
	}
	c.expect(res.StructuredContent != nil, "get-structured-content: no structuredContent")
	res, err = o.callTool(ctx, s, "get-tiny-image", "get-tiny-image", map[string]any{})
	if err != nil {
		return err
	}
	img := false
	for _, ct := range res.Content {
		if im, ok := ct.(*mcp.ImageContent); ok && len(im.Data) > 0 {
			img = true
		}
	}
	c.expect(img, "get-tiny-image: no image content")
	for _, call := range []struct {
		name string
		args map[string]any
	}{
		{"get-annotated-message", map[string]any{"messageType": "error", "includeImage": true}},
		{"get-resource-links", map[string]any{"count": 3}},
		{"get-resource-reference", map[string]any{"resourceType": "Blob", "resourceId": 4}},
	} {
		if _, err := o.callTool(ctx, s, call.name, call.name, call.args); err != nil {
			return err
		}
	}
	return c.err()
}

// scProgress checks, on the wire, that every progress notification for the
// call arrives before its result, carries the request's token unchanged
// (type included) and increases.
func scProgress(ctx context.Context, s *session, o *obs) error {
	var c checks
	for _, tc := range []struct {
		token any
		steps int
	}{
		{"conformance-progress", 4},
		{42, 2},
	} {
		p := &mcp.CallToolParams{Name: "trigger-long-running-operation",
			Arguments: map[string]any{"duration": 0.1 * float64(tc.steps), "steps": tc.steps}}
		p.SetProgressToken(tc.token)
		before := s.handlerProgress()
		if _, err := s.cs.CallTool(ctx, p); err != nil {
			return fmt.Errorf("tools/call trigger-long-running-operation: %w", err)
		}
		_, resp, seen, pc := progressOf(snapshotFrames(s), tc.token)
		c = append(c, pc...)
		if resp == nil {
			return c.err()
		}
		o.add(fmt.Sprintf("result (token %v)", tc.token), resp.result)
		c.expect(len(seen) == tc.steps, "token %v: %d progress notifications %v, want %d before the result",
			tc.token, len(seen), seen, tc.steps)
		o.addValue(fmt.Sprintf("progress (token %v)", tc.token), seen)
		// The client's handler sees them too (it may run after the result returns).
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.waitUntil(wctx, "progress handler calls", func() bool { return len(s.progress)-before >= tc.steps })
		cancel()
		c.expect(err == nil, "ProgressNotificationHandler: %v", err)
	}
	return c.err()
}

func (s *session) handlerProgress() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.progress)
}

func snapshotFrames(s *session) []*frame {
	f, _ := s.w.snapshot()
	return f
}

func scResources(ctx context.Context, s *session, o *obs) error {
	if _, err := s.cs.ListResources(ctx, nil); err != nil {
		return fmt.Errorf("resources/list: %w", err)
	}
	if _, err := o.response(s, "resources/list", "resources/list"); err != nil {
		return err
	}
	if _, err := s.cs.ListResourceTemplates(ctx, nil); err != nil {
		return fmt.Errorf("resources/templates/list: %w", err)
	}
	if _, err := o.response(s, "resources/templates/list", "resources/templates/list"); err != nil {
		return err
	}
	for _, uri := range []string{
		"demo://resource/static/document/features.md",
		"demo://resource/dynamic/text/1",
		"demo://resource/dynamic/blob/2",
	} {
		if _, err := s.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err != nil {
			return fmt.Errorf("resources/read %s: %w", uri, err)
		}
		if _, err := o.response(s, "resources/read "+uri, "resources/read"); err != nil {
			return err
		}
	}
	const bad = "demo://resource/dynamic/text/0"
	if _, err := s.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: bad}); err == nil {
		return fmt.Errorf("resources/read %s succeeded, want an error", bad)
	}
	_, err := o.response(s, "resources/read "+bad, "resources/read")
	return err
}

func (s *session) waitLog(ctx context.Context, substr string) (*mcp.LoggingMessageParams, error) {
	var found *mcp.LoggingMessageParams
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.waitUntil(wctx, fmt.Sprintf("a log message containing %q", substr), func() bool {
		for _, l := range s.logs {
			if d, ok := l.Data.(string); ok && strings.Contains(d, substr) {
				found = l
				return true
			}
		}
		return false
	})
	return found, err
}

func (s *session) sawLog(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.logs {
		if d, ok := l.Data.(string); ok && strings.Contains(d, substr) {
			return true
		}
	}
	return false
}

// wireNotification returns the params of the first notification for method
// after from whose params contain substr.
func (s *session) wireNotification(ctx context.Context, from int, method, substr string) (*frame, error) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.w.waitFrame(wctx, from, func(f *frame) bool {
		return f.dir == toClient && f.method == method && strings.Contains(string(f.params), substr)
	})
}

func scSubscribe(ctx context.Context, s *session, o *obs) error {
	const uri = "demo://resource/static/document/architecture.md"
	if err := s.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		return fmt.Errorf("resources/subscribe: %w", err)
	}
	if _, err := o.response(s, "resources/subscribe", "resources/subscribe"); err != nil {
		return err
	}
	from := s.w.len()
	// Starts periodic notifications/resources/updated for subscribed URIs,
	// the first one at once.
	if _, err := o.callTool(ctx, s, "toggle-subscriber-updates (on)", "toggle-subscriber-updates", map[string]any{}); err != nil {
		return err
	}
	f, err := s.wireNotification(ctx, from, "notifications/resources/updated", uri)
	if err != nil {
		return err
	}
	o.add("notifications/resources/updated", f.params)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.waitUntil(wctx, "ResourceUpdatedHandler", func() bool {
		for _, u := range s.updated {
			if u == uri {
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	if _, err := o.callTool(ctx, s, "toggle-subscriber-updates (off)", "toggle-subscriber-updates", map[string]any{}); err != nil {
		return err
	}
	if err := s.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uri}); err != nil {
		return fmt.Errorf("resources/unsubscribe: %w", err)
	}
	_, err = o.response(s, "resources/unsubscribe", "resources/unsubscribe")
	return err
}

// scLogging uses server-everything's deterministic log lines: it logs (at
// info) every resources/subscribe and resources/unsubscribe it receives,
// honouring the session's logging level.
func scLogging(ctx context.Context, s *session, o *obs) error {
	const (
		uriA = "demo://resource/static/document/startup.md"
		uriB = "demo://resource/static/document/structure.md"
	)
	setLevel := func(l mcp.LoggingLevel) error {
		if err := s.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: l}); err != nil {
			return fmt.Errorf("logging/setLevel %s: %w", l, err)
		}
		_, err := o.response(s, "logging/setLevel "+string(l), "logging/setLevel")
		return err
	}
	if err := setLevel("debug"); err != nil {
		return err
	}
	from := s.w.len()
	if err := s.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uriA}); err != nil {
		return fmt.Errorf("resources/subscribe: %w", err)
	}
	f, err := s.wireNotification(ctx, from, "notifications/message", "Received Subscribe Resource request for URI: "+uriA)
	if err != nil {
		return err
	}
	o.add("notifications/message (subscribe A)", f.params)
	if _, err := s.waitLog(ctx, "Received Subscribe Resource request for URI: "+uriA); err != nil {
		return fmt.Errorf("LoggingMessageHandler: %w", err)
	}
	// At level emergency the info line about this unsubscribe is dropped...
	if err := setLevel("emergency"); err != nil {
		return err
	}
	if err := s.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uriA}); err != nil {
		return fmt.Errorf("resources/unsubscribe: %w", err)
	}
	if err := setLevel("debug"); err != nil {
		return err
	}
	// ...and the next line logged, which travels the same stream, proves it
	// was never sent rather than late.
	from = s.w.len()
	if err := s.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uriB}); err != nil {
		return fmt.Errorf("resources/subscribe: %w", err)
	}
	f, err = s.wireNotification(ctx, from, "notifications/message", "Received Subscribe Resource request for URI: "+uriB)
	if err != nil {
		return err
	}
	o.add("notifications/message (subscribe B)", f.params)
	if _, err := s.waitLog(ctx, "Received Subscribe Resource request for URI: "+uriB); err != nil {
		return fmt.Errorf("LoggingMessageHandler: %w", err)
	}
	if s.sawLog("Received Unsubscribe Resource request: " + uriA) {
		return fmt.Errorf("a log line below the session's level (emergency) was delivered")
	}
	from = s.w.len()
	if err := s.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uriB}); err != nil {
		return fmt.Errorf("resources/unsubscribe: %w", err)
	}
	_, err = s.wireNotification(ctx, from, "notifications/message", "Received Unsubscribe Resource request: "+uriB)
	return err
}

func scPrompts(ctx context.Context, s *session, o *obs) error {
	if _, err := s.cs.ListPrompts(ctx, nil); err != nil {
		return fmt.Errorf("prompts/list: %w", err)
	}
	if _, err := o.response(s, "prompts/list", "prompts/list"); err != nil {
		return err
	}
	for _, g := range []struct {
		name string
		args map[string]string
	}{
		{"simple-prompt", nil},
		{"args-prompt", map[string]string{"city": "Paris", "state": "TX"}},
		{"resource-prompt", map[string]string{"resourceType": "Text", "resourceId": "2"}},
	} {
		res, err := s.cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: g.name, Arguments: g.args})
		if err != nil {
			return fmt.Errorf("prompts/get %s: %w", g.name, err)
		}
		if _, err := o.response(s, "prompts/get "+g.name, "prompts/get"); err != nil {
			return err
		}
		if g.name == "args-prompt" {
			text := ""
			if len(res.Messages) > 0 {
				if t, ok := res.Messages[0].Content.(*mcp.TextContent); ok {
					text = t.Text
				}
			}
			if want := "What's weather in Paris, TX?"; text != want {
				return fmt.Errorf("prompts/get args-prompt = %q, want %q", text, want)
			}
		}
	}
	if _, err := s.cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "no-such-prompt"}); err == nil {
		return fmt.Errorf("prompts/get no-such-prompt succeeded")
	}
	_, err := o.response(s, "prompts/get no-such-prompt", "prompts/get")
	return err
}

func scComplete(ctx context.Context, s *session, o *obs) error {
	for _, tc := range []struct {
		label string
		p     *mcp.CompleteParams
		want  []string
	}{
		{"prompt department", &mcp.CompleteParams{
			Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "completable-prompt"},
			Argument: mcp.CompleteParamsArgument{Name: "department", Value: "E"},
		}, []string{"Engineering"}},
		{"prompt name with context", &mcp.CompleteParams{
			Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "completable-prompt"},
			Argument: mcp.CompleteParamsArgument{Name: "name", Value: ""},
			Context:  &mcp.CompleteContext{Arguments: map[string]string{"department": "Engineering"}},
		}, []string{"Alice", "Bob", "Charlie"}},
		{"resource template", &mcp.CompleteParams{
			Ref:      &mcp.CompleteReference{Type: "ref/resource", URI: "demo://resource/dynamic/text/{resourceId}"},
			Argument: mcp.CompleteParamsArgument{Name: "resourceId", Value: "3"},
		}, []string{"3"}},
	} {
		res, err := s.cs.Complete(ctx, tc.p)
		if err != nil {
			return fmt.Errorf("completion/complete %s: %w", tc.label, err)
		}
		if _, err := o.response(s, "completion/complete "+tc.label, "completion/complete"); err != nil {
			return err
		}
		if fmt.Sprint(res.Completion.Values) != fmt.Sprint(tc.want) {
			return fmt.Errorf("completion/complete %s = %v, want %v", tc.label, res.Completion.Values, tc.want)
		}
	}
	return nil
}

// serverRequest finds the server-to-client request for method after from,
// and the client's response to it.
func (s *session) serverRequest(ctx context.Context, from int, method string) (req, resp *frame, err error) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err = s.w.waitFrame(wctx, from, func(f *frame) bool {
		return f.dir == toClient && f.isRequest() && f.method == method
	})
	if err != nil {
		return nil, nil, fmt.Errorf("no %s request from the server: %w", method, err)
	}
	resp, err = s.w.waitFrame(wctx, req.seq+1, func(f *frame) bool {
		return f.dir == toServer && f.isResponse() && idKey(f.id) == idKey(req.id)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("no client response to %s: %w", method, err)
	}
	return req, resp, nil
}

func scSampling(ctx context.Context, s *session, o *obs) error {
	from := s.w.len()
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "trigger-sampling-request",
		Arguments: map[string]any{"prompt": "conformance prompt", "maxTokens": 32}})
	if err != nil {
		return fmt.Errorf("tools/call trigger-sampling-request: %w", err)
	}
	req, resp, err := s.serverRequest(ctx, from, "sampling/createMessage")
	if err != nil {
		return err
	}
	o.add("sampling/createMessage params", req.params)
	o.add("client answer", resp.result)
	if _, err := o.response(s, "tools/call trigger-sampling-request", "tools/call"); err != nil {
		return err
	}
	var c checks
	s.mu.Lock()
	n := len(s.samplings)
	var got string
	if n > 0 && len(s.samplings[0].Messages) > 0 {
		if t, ok := s.samplings[0].Messages[0].Content.(*mcp.TextContent); ok {
			got = t.Text
		}
	}
	s.mu.Unlock()
	c.expect(n == 1, "CreateMessageHandler called %d times, want 1", n)
	c.expect(got == "Resource trigger-sampling-request context: conformance prompt", "sampling prompt = %q", got)
	text := resultText(res)
	c.expect(strings.Contains(text, sampleModel) && strings.Contains(text, sampleReply),
		"the tool result does not carry the client's sampling answer: %q", text)
	return c.err()
}

func scElicitation(ctx context.Context, s *session, o *obs) error {
	from := s.w.len()
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "trigger-elicitation-request", Arguments: map[string]any{}})
	if err != nil {
		return fmt.Errorf("tools/call trigger-elicitation-request: %w", err)
	}
	req, resp, err := s.serverRequest(ctx, from, "elicitation/create")
	if err != nil {
		return err
	}
	o.add("elicitation/create params", req.params)
	o.add("client answer", resp.result)
	if _, err := o.response(s, "tools/call trigger-elicitation-request", "tools/call"); err != nil {
		return err
	}
	var c checks
	s.mu.Lock()
	n := len(s.elicits)
	s.mu.Unlock()
	c.expect(n == 1, "ElicitationHandler called %d times, want 1", n)
	text := resultText(res)
	for _, want := range []string{"- Name: Ada Lovelace", "- Agreed to terms: true", "- Email: ada@example.com", "- Favorite Integer: 7"} {
		c.expect(strings.Contains(text, want), "the tool result lacks %q: %q", want, text)
	}
	return c.err()
}

// scRoots: server-everything asks the client for roots/list about 350 ms
// after notifications/initialized (over the standalone stream for HTTP), then
// get-roots-list reports what it got.
func scRoots(ctx context.Context, s *session, o *obs) error {
	req, resp, err := s.serverRequest(ctx, 0, "roots/list")
	if err != nil {
		return err
	}
	o.add("roots/list params", orEmpty(req.params))
	o.add("client answer", resp.result)
	res, err := o.callTool(ctx, s, "get-roots-list", "get-roots-list", map[string]any{})
	if err != nil {
		return err
	}
	text := resultText(res)
	if !strings.Contains(text, rootURI) || !strings.Contains(text, rootName) {
		return fmt.Errorf("get-roots-list does not list the client's root: %q", text)
	}
	return nil
}

// scRootsChanged adds a root on the client: the client notifies the server,
// which asks for roots/list again and reports both roots.
func scRootsChanged(ctx context.Context, s *session, o *obs) error {
	from := s.w.len()
	s.client.AddRoots(&mcp.Root{URI: rootURI + "-2", Name: rootName + "-2"})
	if _, err := s.w.waitFrame(ctx, from, func(f *frame) bool {
		return f.dir == toServer && f.method == "notifications/roots/list_changed"
	}); err != nil {
		return fmt.Errorf("client did not send notifications/roots/list_changed: %w", err)
	}
	_, resp, err := s.serverRequest(ctx, from, "roots/list")
	if err != nil {
		return fmt.Errorf("after list_changed: %w", err)
	}
	o.add("client answer", resp.result)
	if _, err := s.wireNotification(ctx, from, "notifications/message", "Roots updated: 2 root(s)"); err != nil {
		return err
	}
	res, err := o.callTool(ctx, s, "get-roots-list", "get-roots-list", map[string]any{})
	if err != nil {
		return err
	}
	if text := resultText(res); !strings.Contains(text, rootName+"-2") {
		return fmt.Errorf("get-roots-list does not list the new root: %q", text)
	}
	return nil
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(`null`)
	}
	return raw
}
