package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/policy"
)

const testToken = "t0ken-for-tests"

type fakePolicy struct{ st policy.Status }

func (f fakePolicy) Status() policy.Status { return f.st }

// approvalsAPI is the admin handler with the approval routes mounted the
// way the sidecar mounts them, on a loopback server.
type approvalsAPI struct {
	srv    *httptest.Server
	broker *approvals.Broker
}

func newApprovalsAPI(t *testing.T, pol PolicyStatus) *approvalsAPI {
	t.Helper()
	b := approvals.New(approvals.Options{})
	ah := ApprovalsHandler(b, ApprovalsOptions{Token: testToken, Policy: pol})
	extra := map[string]http.Handler{}
	for _, p := range ApprovalPatterns {
		extra[p] = ah
	}
	h := Handler(Options{Token: testToken, Extra: extra, Public: ApprovalPatterns})
	if pol != nil {
		h = PolicyHealth(h, pol)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &approvalsAPI{srv: srv, broker: b}
}

type held struct {
	d   approvals.Decision
	err error
}

// hold holds r in the broker until decided; the test's end withdraws it.
func (a *approvalsAPI) hold(t *testing.T, r approvals.Request) <-chan held {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan held, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, err := a.broker.Hold(ctx, r, nil)
		ch <- held{d, err}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	for {
		if _, ok := a.broker.Get(r.ID); ok {
			return ch
		}
		time.Sleep(time.Millisecond)
	}
}

func heldRequest(id string) approvals.Request {
	return approvals.Request{
		ID: id, Saga: "s-test", Step: 2, Upstream: "payments", Tool: "charge_customer",
		Arguments:  json.RawMessage(`{"customer":"<script>alert(1)</script>","amount":1840,"currency":"EUR"}`),
		ArgsDigest: "sha256:d1", Reasons: []string{"charges need a person & a reason"}, Approvers: []string{"finance"},
		Agent: "booking-agent", Labels: map[string]string{"risk": "high"},
		History:    []approvals.Step{{N: 1, Upstream: "hotel", Tool: "book_hotel", Status: "succeeded", Args: json.RawMessage(`{"nights":3}`)}},
		DecisionID: "dec-1", Expires: time.Now().Add(time.Hour),
	}
}

// do sends a request with the bearer token (if bearer) and returns the
// status and body.
func (a *approvalsAPI) do(t *testing.T, method, path, body string, bearer bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestApprovalsAPI(t *testing.T) {
	a := newApprovalsAPI(t, nil)
	for _, p := range []string{"/v1/approvals", "/v1/approvals/ap-1"} {
		if code, _ := a.do(t, "GET", p, "", false); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d, want 401", p, code)
		}
	}
	if code, body := a.do(t, "GET", "/v1/approvals", "", true); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /v1/approvals with none pending = %d %s, want 200 []", code, body)
	}
	res := a.hold(t, heldRequest("ap-1"))

	code, body := a.do(t, "GET", "/v1/approvals", "", true)
	var list []approvals.Request
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 1 || list[0].ID != "ap-1" {
		t.Fatalf("GET /v1/approvals = %d %s", code, body)
	}
	if code, body := a.do(t, "GET", "/v1/approvals/ap-1", "", true); code != 200 || !strings.Contains(body, `"args_digest": "sha256:d1"`) {
		t.Errorf("GET /v1/approvals/ap-1 = %d %s", code, body)
	}
	if code, _ := a.do(t, "GET", "/v1/approvals/ap-nope", "", true); code != http.StatusNotFound {
		t.Errorf("GET an unknown approval = %d, want 404", code)
	}
	if code, _ := a.do(t, "POST", "/v1/approvals/ap-nope/approve", `{}`, true); code != http.StatusNotFound {
		t.Errorf("approve an unknown approval = %d, want 404", code)
	}
	if code, _ := a.do(t, "POST", "/v1/approvals/ap-1/approve", `{"by": "alice"`, true); code != http.StatusBadRequest {
		t.Errorf("approve with a broken body = %d, want 400", code)
	}
	if code, body := a.do(t, "POST", "/v1/approvals/ap-1/approve", `{"by":"alice","args_digest":"sha256:other"}`, true); code != http.StatusConflict || !strings.Contains(body, "sha256:d1") {
		t.Errorf("approve for other arguments = %d %s, want 409 naming the call's digest", code, body)
	}
	if code, _ := a.do(t, "POST", "/v1/approvals/ap-1/approve", `{"by":"alice"}`, false); code != http.StatusUnauthorized {
		t.Errorf("approve without the token = %d, want 401", code)
	}

	code, body = a.do(t, "POST", "/v1/approvals/ap-1/approve", `{"by":"alice","reason":"looks right","args_digest":"sha256:d1"}`, true)
	var d Decided
	if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !d.Approved || d.By != "alice" || d.Approval.ID != "ap-1" {
		t.Fatalf("approve = %d %s", code, body)
	}
	if r := <-res; r.err != nil || !r.d.Approved || r.d.By != "alice" || r.d.Reason != "looks right" || r.d.ArgsDigest != "sha256:d1" {
		t.Errorf("the held call got %+v, %v; want alice's approval for its digest", r.d, r.err)
	}
	code, body = a.do(t, "POST", "/v1/approvals/ap-1/deny", `{"by":"bob"}`, true)
	if code != http.StatusConflict || !strings.Contains(body, "already decided: approved by alice") {
		t.Errorf("a second decision = %d %s, want 409 naming the first", code, body)
	}
	if code, _ := a.do(t, "GET", "/v1/approvals/ap-1", "", true); code != http.StatusConflict {
		t.Errorf("GET a decided approval = %d, want 409", code)
	}

	res2 := a.hold(t, heldRequest("ap-2"))
	if code, body := a.do(t, "POST", "/v1/approvals/ap-2/deny", "", true); code != 200 {
		t.Fatalf("deny without a body = %d %s", code, body)
	}
	if r := <-res2; r.err != nil || r.d.Approved || r.d.By != "admin-api" {
		t.Errorf("the held call got %+v, %v; want a denial by admin-api", r.d, r.err)
	}
}

func TestPolicyRouteAndHealth(t *testing.T) {
	st := policy.Status{Revision: "abc123", LoadedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), Files: []string{"authz.rego"}, Mode: "enforce"}
	a := newApprovalsAPI(t, fakePolicy{st})
	code, body := a.do(t, "GET", "/v1/policy", "", true)
	var got policy.Status
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || got.Revision != "abc123" || len(got.Files) != 1 {
		t.Errorf("GET /v1/policy = %d %s", code, body)
	}
	code, body = a.do(t, "GET", "/healthz", "", false)
	if code != 200 || !strings.Contains(body, `"status": "ok"`) || !strings.Contains(body, `"revision": "abc123"`) || strings.Contains(body, "last_error") {
		t.Errorf("GET /healthz = %d %s", code, body)
	}

	st.LastError, st.LastErrorAt = "reload policy p: policy error: p/authz.rego:3:1: rego_parse_error", time.Now()
	b := newApprovalsAPI(t, fakePolicy{st})
	for _, p := range []string{"/healthz", "/readyz"} {
		code, body = b.do(t, "GET", p, "", false)
		var h struct {
			Status string
			Policy struct {
				Revision  string `json:"revision"`
				LastError string `json:"last_error"`
			}
		}
		if err := json.Unmarshal([]byte(body), &h); code != 200 || err != nil || h.Status != "ok" || h.Policy.Revision != "abc123" || !strings.Contains(h.Policy.LastError, "rego_parse_error") {
			t.Errorf("GET %s with a rejected reload = %d %s; want 200, ok, and the error under policy", p, code, body)
		}
	}
	if code, _ := newApprovalsAPI(t, nil).do(t, "GET", "/v1/policy", "", true); code != http.StatusNotFound {
		t.Errorf("GET /v1/policy with no policy engine = %d, want 404", code)
	}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that the test sees each answer.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestApprovalsPage(t *testing.T) {
	a := newApprovalsAPI(t, nil)
	c := browser(t)
	page := a.srv.URL + "/approvals"

	resp, body := get(t, c, page)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "admin.token") {
		t.Errorf("the page without a session = %d, want 401 explaining how to sign in:\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, page+"?token=wrong"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong token = %d with cookies %v, want 401 and none", resp.StatusCode, resp.Cookies())
	}
	resp, _ = get(t, c, page+"?token="+testToken)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/approvals" {
		t.Fatalf("the token link = %d to %q, want 303 to /approvals", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Path != "/approvals" || cookies[0].Value == testToken {
		t.Fatalf("session cookie = %+v, want one HttpOnly SameSite=Strict cookie for /approvals that is not the token", cookies)
	}

	resp, body = get(t, c, page)
	if resp.StatusCode != 200 || !strings.Contains(body, "No calls are waiting") {
		t.Errorf("the empty page = %d:\n%s", resp.StatusCode, body)
	}
	// no-referrer would make browsers send "Origin: null" on the form's POST.
	if rp := resp.Header.Get("Referrer-Policy"); rp != "same-origin" {
		t.Errorf("Referrer-Policy = %q, want same-origin", rp)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	// The cookie opens the page, not the API.
	req, _ := http.NewRequest("GET", a.srv.URL+"/v1/approvals", nil)
	req.AddCookie(cookies[0])
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API with the page's cookie = %d, want 401", resp.StatusCode)
	}

	res := a.hold(t, heldRequest("ap-0000000000000001"))
	resp, body = get(t, c, page)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the page with a call held = %d", resp.StatusCode)
	}
	for _, want := range []string{
		"payments/charge_customer", "ap-0000000000000001", "charges need a person &amp; a reason", "finance", "booking-agent",
		"s-test, step 2", "sha256:d1", "risk", "book_hotel",
		"{\n  &#34;customer&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;,\n  &#34;amount&#34;: 1840,", // escaped and pretty-printed
		`action="/approvals/ap-0000000000000001"`, `value="approve"`, `value="deny"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("the page carries the arguments' <script> unescaped")
	}

	form := url.Values{"decision": {"approve"}, "by": {"Wendy"}, "reason": {"checked the invoice"}, "args_digest": {"sha256:d1"}}
	action := page + "/ap-0000000000000001"
	for _, h := range []map[string]string{
		{},                                // no Origin: not from a browser form
		{"Origin": "http://evil.example"}, // another site
		{"Origin": a.srv.URL, "Sec-Fetch-Site": "cross-site"},
		{"Origin": "null"},
	} {
		if resp := postForm(t, c, action, form, h); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with headers %v = %d, want 403", h, resp.StatusCode)
		}
	}
	if resp := postForm(t, browser(t), action, form, map[string]string{"Origin": a.srv.URL}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without the cookie = %d, want 401", resp.StatusCode)
	}
	noName := url.Values{"decision": {"approve"}, "args_digest": {"sha256:d1"}}
	if resp := postForm(t, c, action, noName, map[string]string{"Origin": a.srv.URL}); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(resp.Header.Get("Location"), "problem=name") {
		t.Errorf("POST without a name = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, ok := a.broker.Get("ap-0000000000000001"); !ok {
		t.Fatal("a refused POST decided the approval")
	}

	resp = postForm(t, c, action, form, map[string]string{"Origin": a.srv.URL, "Sec-Fetch-Site": "same-origin"})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc != "/approvals?id=ap-0000000000000001&outcome=approved" {
		t.Fatalf("approve from the page = %d to %q", resp.StatusCode, loc)
	}
	if r := <-res; r.err != nil || !r.d.Approved || r.d.By != "web:Wendy" || r.d.Reason != "checked the invoice" {
		t.Errorf("the held call got %+v, %v; want Wendy's approval", r.d, r.err)
	}
	_, body = get(t, c, a.srv.URL+loc)
	if !strings.Contains(body, "Approved ap-0000000000000001") || strings.Contains(body, `data-approval="ap-0000000000000001"`) {
		t.Errorf("the page after approving does not say so, or still lists the call:\n%s", body)
	}
	if resp := postForm(t, c, action, form, map[string]string{"Origin": a.srv.URL}); !strings.Contains(resp.Header.Get("Location"), "problem=decided") {
		t.Errorf("a second decision from the page redirects to %q, want problem=decided", resp.Header.Get("Location"))
	}
	// Only fixed messages come from the URL.
	_, body = get(t, c, page+"?problem=%3Cb%3Eyou+are+hacked&id=ap-1")
	if strings.Contains(body, "hacked") {
		t.Error("the page shows text taken from its URL")
	}
}

// TestApprovalsHandlerNoToken refuses everything when no token is set.
func TestApprovalsHandlerNoToken(t *testing.T) {
	srv := httptest.NewServer(ApprovalsHandler(approvals.New(approvals.Options{}), ApprovalsOptions{}))
	defer srv.Close()
	for _, u := range []string{"/v1/approvals", "/approvals", "/approvals?token="} {
		resp, err := http.Get(srv.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with no token configured = %d, want 401", u, resp.StatusCode)
		}
	}
}
