package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/examples/toolservers"
)

// TestApprovalsPageInChromium: a person opens the approvals page in a
// real (headless) Chromium with the admin token link, sees the held call
// with its arguments, types a name and a reason, and clicks Approve; the
// agent's held call then completes, and the journal says who approved.
func TestApprovalsPageInChromium(t *testing.T) {
	bin := chromiumBinary(t)
	s := startApprovals(t, "enforce")
	args := map[string]any{"customer": "cus_web <b>&</b>", "amount": 42.5, "currency": "EUR"}
	held := s.call("charge_customer", "saga-web", args)
	req := s.waitHeld(t, "saga-web")
	token, err := admin.ReadToken("", "", filepath.Join(filepath.Dir(s.sp.config), "data"))
	if err != nil {
		t.Fatal(err)
	}

	b := startChromium(t, bin)
	page := b.open(t, "http://"+s.sp.admin+"/approvals?token="+token)
	page.waitFor(t, "the approvals page", `location.pathname + location.search === "/approvals" && document.readyState === "complete"`)

	var seen struct {
		Text     string `json:"text"`
		Args     string `json:"args"`
		Injected int    `json:"injected"`
		Cookie   string `json:"cookie"`
	}
	page.evalInto(t, fmt.Sprintf(`JSON.stringify({
		text: document.body.innerText,
		args: document.querySelector('article[data-approval=%q] pre.arguments').innerText,
		injected: document.querySelectorAll('pre b').length,
		cookie: document.cookie,
	})`, req.ID), &seen)
	for _, want := range []string{"payments/charge_customer", req.ID, "charges need a person's approval", "finance", "saga-web, step 1", req.ArgsDigest} {
		if !strings.Contains(seen.Text, want) {
			t.Errorf("the page does not show %q:\n%s", want, seen.Text)
		}
	}
	for _, want := range []string{`"customer": "cus_web <b>&</b>"`, `"amount": 42.5`, `"currency": "EUR"`} {
		if !strings.Contains(seen.Args, want) {
			t.Errorf("the arguments shown lack %q:\n%s", want, seen.Args)
		}
	}
	if seen.Injected != 0 {
		t.Error("the call's arguments became HTML elements on the page")
	}
	if seen.Cookie != "" {
		t.Errorf("the page's script can read the session cookie %q; want it HttpOnly", seen.Cookie)
	}
	page.screenshot(t, "approvals-pending.png")

	page.eval(t, fmt.Sprintf(`(() => {
		const form = document.querySelector('article[data-approval=%q] form');
		form.querySelector('input[name=by]').value = 'Wendy Web';
		form.querySelector('input[name=reason]').value = 'checked in the browser';
		form.querySelector('button[value=approve]').click();
		return "clicked";
	})()`, req.ID))
	page.waitFor(t, "the page after approving", `location.search.includes("outcome=approved") && document.readyState === "complete"`)
	if text := page.eval(t, `document.body.innerText`); !strings.Contains(text, "Approved "+req.ID) || strings.Contains(text, "Wendy") {
		t.Errorf("the page after approving:\n%s", text)
	}
	page.screenshot(t, "approvals-approved.png")

	res := receive(t, held)
	if res.IsError {
		t.Fatalf("the call approved in the browser failed: %s", text(res))
	}
	if c := s.payments.Charges(); len(c) != 1 || c[0].Customer != "cus_web <b>&</b>" || c[0].Status != toolservers.ChargeCaptured {
		t.Errorf("charges = %+v, want the approved one", c)
	}
	b.close(t)
	rec := s.journalOf(t, "saga-web")["saga-web"]
	d := rec.notes["approval_decided"]
	if len(d) != 1 || d[0].Decision == nil || !d[0].Decision.Approved || d[0].Decision.By != "web:Wendy Web" ||
		d[0].Decision.Reason != "checked in the browser" || d[0].Decision.ArgsDigest != req.ArgsDigest || rec.saga.Steps[0].ArgsDigest != req.ArgsDigest {
		t.Errorf("the journal's approval = %+v, want Wendy's for digest %s", d, req.ArgsDigest)
	}
}

// chromiumBinary finds Chromium, or skips the test.
func chromiumBinary(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium): the approvals page was not tested in a browser")
	return ""
}

// chromium is a headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and
// 4), so no WebSocket client is needed.
type chromium struct {
	cmd     *exec.Cmd
	in      *os.File // its fd 3
	replies chan cdpMessage
	read    sync.WaitGroup
	stderr  *syncBuffer

	mu     sync.Mutex
	nextID int
	closed bool
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func startChromium(t *testing.T, bin string) *chromium {
	t.Helper()
	profile := t.TempDir() // removed after Chromium has exited (cleanups run last first)
	toChrome, ourEnd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChrome, chromeEnd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &chromium{in: ourEnd, replies: make(chan cdpMessage, 16), stderr: &syncBuffer{}}
	c.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir="+profile, "--window-size=1100,1400", "--remote-debugging-pipe", "about:blank")
	c.cmd.ExtraFiles = []*os.File{toChrome, chromeEnd} // fds 3 and 4
	c.cmd.Stderr = c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toChrome.Close()
	chromeEnd.Close()
	c.read.Add(1)
	go func() {
		defer c.read.Done()
		defer close(c.replies)
		r := bufio.NewReader(fromChrome)
		for {
			msg, err := r.ReadBytes(0)
			if err != nil {
				return
			}
			var m cdpMessage
			if json.Unmarshal(msg[:len(msg)-1], &m) == nil && m.ID != 0 {
				c.replies <- m
			}
		}
	}()
	t.Cleanup(func() {
		c.close(t)
		fromChrome.Close()
	})
	return c
}

// call sends one command and waits for its answer.
func (c *chromium) call(session, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("chromium is closed")
	}
	c.nextID++
	id := c.nextID
	b, _ := json.Marshal(cdpMessage{ID: id, Method: method, Params: params, SessionID: session})
	_, err := c.in.Write(append(b, 0))
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-c.replies:
			if !ok {
				return nil, fmt.Errorf("%s: chromium exited", method)
			}
			if m.ID != id {
				continue // an answer to a call that gave up
			}
			if m.Error != nil {
				return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
			}
			return m.Result, nil
		case <-timeout:
			return nil, fmt.Errorf("%s: no answer from chromium", method)
		}
	}
}

// close asks Chromium to quit, and kills its process group if it does not.
func (c *chromium) close(t *testing.T) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_, _ = c.call("", "Browser.close", nil)
	c.mu.Lock()
	c.closed = true
	c.in.Close()
	c.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Logf("chromium did not quit; killing it:\n%s", c.stderr.String())
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL) // helpers it left behind
	c.read.Wait()
}

// tab is one page of the browser.
type tab struct {
	c       *chromium
	session string
}

func (c *chromium) open(t *testing.T, url string) *tab {
	t.Helper()
	res, err := c.call("", "Target.createTarget", map[string]any{"url": url})
	if err != nil {
		t.Fatalf("%v\n%s", err, c.stderr.String())
	}
	var target struct{ TargetID string }
	_ = json.Unmarshal(res, &target)
	res, err = c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		t.Fatal(err)
	}
	var att struct{ SessionID string }
	_ = json.Unmarshal(res, &att)
	return &tab{c: c, session: att.SessionID}
}

// evaluate runs a JavaScript expression in the page and returns its value.
func (p *tab) evaluate(expr string) (any, error) {
	res, err := p.c.call(p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return nil, err
	}
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, err
	}
	if e := r.ExceptionDetails; e != nil {
		return nil, fmt.Errorf("%s %s", e.Text, e.Exception.Description)
	}
	return r.Result.Value, nil
}

func (p *tab) eval(t *testing.T, expr string) string {
	t.Helper()
	v, err := p.evaluate(expr)
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	s, _ := v.(string)
	return s
}

func (p *tab) evalInto(t *testing.T, expr string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(p.eval(t, expr)), out); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls a boolean expression until it is true (while the page
// navigates, evaluation may fail for a moment).
func (p *tab) waitFor(t *testing.T, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := p.evaluate(cond)
		if ok, _ := v.(bool); ok && err == nil {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := p.evaluate("location.href + '\\n' + document.body.innerText")
			t.Fatalf("timed out waiting for %s (last error %v); the page is %v", what, err, loc)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// screenshot takes a PNG of the page; it is kept in the directory
// $AGENTHELM_SCREENSHOTS when that is set.
func (p *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	res, err := p.c.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true})
	if err != nil {
		t.Fatal(err)
	}
	var shot struct{ Data string }
	_ = json.Unmarshal(res, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if dir := os.Getenv("AGENTHELM_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Error(err)
		}
	}
}
