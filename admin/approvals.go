package admin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/policy"
)

// PolicyStatus is what the admin API needs from the policy engine.
type PolicyStatus interface {
	Status() policy.Status
}

var _ PolicyStatus = (*policy.Engine)(nil)

// ApprovalsOptions configure ApprovalsHandler.
type ApprovalsOptions struct {
	// Token is the admin token. Empty: every request is refused.
	Token string
	// Policy answers GET /v1/policy; nil answers 404.
	Policy PolicyStatus
	// Logger receives one line per decision; nil discards.
	Logger *slog.Logger
	// Now is the clock for "expires in" on the page; nil means time.Now.
	Now func() time.Time
}

// ApprovalPatterns are the routes ApprovalsHandler serves. It checks the
// admin token itself, because the page must also accept a browser's
// cookie, so mount every one of them in Options.Extra and list them in
// Options.Public:
//
//	GET  /v1/approvals                  pending approvals, oldest first ([]approvals.Request)
//	GET  /v1/approvals/{id}             one pending approval; 404 if none
//	POST /v1/approvals/{id}/approve     body Decide; 404 unknown, 409 already decided
//	POST /v1/approvals/{id}/deny        or not for this argument digest
//	GET  /v1/policy                     the policy's policy.Status
//	GET  /approvals                     the approvals page (HTML)
//	POST /approvals/{id}                the page's approve/deny form
//
// The /v1 routes take the bearer token. The page takes it once as
// /approvals?token=..., which sets an HttpOnly, SameSite=Strict cookie
// (derived from the token, valid for the page only) and redirects to
// /approvals; the form's POSTs must come from the page's own origin.
var ApprovalPatterns = []string{
	"GET /v1/approvals",
	"GET /v1/approvals/{id}",
	"POST /v1/approvals/{id}/approve",
	"POST /v1/approvals/{id}/deny",
	"GET /v1/policy",
	"GET " + approvals.PagePath,
	"POST " + approvals.PagePath + "/{id}",
}

// Decide is the body of POST /v1/approvals/{id}/approve and /deny. All
// fields are optional.
type Decide struct {
	// By names who decides (journaled); empty means "admin-api".
	By string `json:"by"`
	// Reason is journaled, and told to the agent on a denial.
	Reason string `json:"reason"`
	// ArgsDigest, if set, must be the pending call's argument digest: the
	// decision is then for exactly the arguments the approver saw.
	ArgsDigest string `json:"args_digest,omitempty"`
}

// Decided is the answer to a decision: the request, and what was decided.
type Decided struct {
	Approval approvals.Request `json:"approval"`
	Approved bool              `json:"approved"`
	By       string            `json:"by"`
	Reason   string            `json:"reason,omitempty"`
	At       time.Time         `json:"at"`
}

// ApprovalsHandler serves ApprovalPatterns for the broker b.
func ApprovalsHandler(b *approvals.Broker, o ApprovalsOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &approvalServer{b: b, o: o, recent: map[string]Decided{}}
	if o.Token != "" {
		mac := hmac.New(sha256.New, []byte(o.Token))
		mac.Write([]byte("agenthelm approvals page"))
		a.cookie = hex.EncodeToString(mac.Sum(nil))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/approvals", a.api(a.list))
	mux.Handle("GET /v1/approvals/{id}", a.api(a.show))
	mux.Handle("POST /v1/approvals/{id}/approve", a.api(func(w http.ResponseWriter, r *http.Request) { a.decideAPI(w, r, true) }))
	mux.Handle("POST /v1/approvals/{id}/deny", a.api(func(w http.ResponseWriter, r *http.Request) { a.decideAPI(w, r, false) }))
	mux.Handle("GET /v1/policy", a.api(a.policy))
	mux.HandleFunc("GET "+approvals.PagePath, a.page)
	mux.HandleFunc("POST "+approvals.PagePath+"/{id}", a.form)
	return mux
}

// errDigestMismatch: a decision named other arguments than the call's.
var errDigestMismatch = errors.New("look at it again")

// recentMax bounds the memory of decisions made here, which lets a late
// second decision get 409 (with who decided) instead of 404.
const recentMax = 1024

type approvalServer struct {
	b      *approvals.Broker
	o      ApprovalsOptions
	cookie string // the page's cookie value; empty if there is no token

	mu          sync.Mutex
	recent      map[string]Decided
	recentOrder []string
}

// pageCookie is the page's session cookie.
const pageCookie = "agenthelm_approvals"

func (a *approvalServer) bearerOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && a.o.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.o.Token)) == 1
}

func (a *approvalServer) cookieOK(r *http.Request) bool {
	c, err := r.Cookie(pageCookie)
	return err == nil && a.cookie != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.cookie)) == 1
}

func (a *approvalServer) api(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.bearerOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agenthelm"`)
			writeJSON(w, http.StatusUnauthorized, Error{"missing or wrong admin token: send Authorization: Bearer <token> (see the admin.token file in the data directory)"})
			return
		}
		h(w, r)
	})
}

func (a *approvalServer) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.b.Pending())
}

func (a *approvalServer) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if req, ok := a.b.Get(id); ok {
		writeJSON(w, http.StatusOK, req)
		return
	}
	status, msg := a.gone(id)
	writeJSON(w, status, Error{msg})
}

// gone explains why id is not pending: 409 if it was decided here, else
// 404.
func (a *approvalServer) gone(id string) (int, string) {
	a.mu.Lock()
	d, ok := a.recent[id]
	a.mu.Unlock()
	if ok {
		return http.StatusConflict, fmt.Sprintf("approval %s was already decided: %s by %s at %s",
			id, verdict(d.Approved), d.By, d.At.UTC().Format(time.RFC3339))
	}
	return http.StatusNotFound, fmt.Sprintf("no pending approval %s: unknown, or it expired or was decided or withdrawn (the journal has what became of it)", id)
}

func verdict(approved bool) string {
	if approved {
		return "approved"
	}
	return "denied"
}

func (a *approvalServer) decideAPI(w http.ResponseWriter, r *http.Request, approve bool) {
	var body Decide
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil && len(bytes.TrimSpace(data)) > 0 {
		err = json.Unmarshal(data, &body)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Error{"body: want {\"by\": ..., \"reason\": ...}: " + err.Error()})
		return
	}
	by := strings.TrimSpace(body.By)
	if by == "" {
		by = "admin-api"
	}
	d, status, err := a.decide(r.PathValue("id"), approve, by, strings.TrimSpace(body.Reason), body.ArgsDigest, "api")
	if err != nil {
		writeJSON(w, status, Error{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// decide decides id for everyone (API and page): the status is the
// answer's when err is set.
func (a *approvalServer) decide(id string, approve bool, by, reason, digest, via string) (Decided, int, error) {
	if digest != "" {
		if req, ok := a.b.Get(id); ok && req.ArgsDigest != digest {
			return Decided{}, http.StatusConflict, fmt.Errorf("approval %s is for arguments with digest %s, not %s: %w", id, req.ArgsDigest, digest, errDigestMismatch)
		}
	}
	req, err := a.b.Decide(id, approve, by, reason)
	switch {
	case errors.Is(err, approvals.ErrAlreadyDecided):
		return Decided{}, http.StatusConflict, fmt.Errorf("approval %s: %w", id, err)
	case errors.Is(err, approvals.ErrNotFound):
		status, msg := a.gone(id)
		return Decided{}, status, errors.New(msg)
	case err != nil:
		return Decided{}, http.StatusInternalServerError, err
	}
	d := Decided{Approval: req, Approved: approve, By: by, Reason: reason, At: a.o.Now()}
	a.mu.Lock()
	a.recent[id] = d
	a.recentOrder = append(a.recentOrder, id)
	if len(a.recentOrder) > recentMax {
		delete(a.recent, a.recentOrder[0])
		a.recentOrder = a.recentOrder[1:]
	}
	a.mu.Unlock()
	a.o.Logger.Info("approval decided", "approval", id, "approved", approve, "by", by, "via", via,
		"saga", req.Saga, "step", req.Step, "tool", req.Tool, "args_digest", req.ArgsDigest)
	return d, 0, nil
}

func (a *approvalServer) policy(w http.ResponseWriter, r *http.Request) {
	if a.o.Policy == nil {
		writeJSON(w, http.StatusNotFound, Error{"no policy engine"})
		return
	}
	writeJSON(w, http.StatusOK, a.o.Policy.Status())
}

// The page.

var pageTmpl = template.Must(template.New("approvals").Funcs(template.FuncMap{
	"pretty": func(raw json.RawMessage) string {
		if len(bytes.TrimSpace(raw)) == 0 {
			return "{}"
		}
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") != nil {
			return string(raw)
		}
		return b.String()
	},
	"utc":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"join": strings.Join,
}).Parse(pageHTML))

type pageData struct {
	Authorized bool
	SignIn     bool // explain how to open the page
	Pending    []pendingView
	Notice     string
	Problem    string
	Now        string
}

type pendingView struct {
	approvals.Request
	ExpiresIn string
}

// Outcomes and problems the form redirects back with (?outcome=...&id=...
// or ?problem=...&id=...): the page shows a fixed message for each, never
// text taken from the URL but the approval id.
var (
	outcomes = map[string]string{
		"approved": "Approved %s: the call goes on.",
		"denied":   "Denied %s: the agent is told why.",
	}
	problems = map[string]string{
		"choice":  "Choose Approve or Deny for %s.",
		"name":    "Give your name to decide %s: the journal records who decided.",
		"gone":    "%s is no longer pending: it expired, or was decided or withdrawn elsewhere. The journal has what became of it.",
		"decided": "%s was already decided by someone else: the first decision stands.",
		"digest":  "The arguments of %s are not the ones shown when you decided: look at it again.",
	}
)

// problemCode maps a decide error's status to a problem.
func problemCode(status int, err error) string {
	switch {
	case status == http.StatusNotFound:
		return "gone"
	case errors.Is(err, errDigestMismatch):
		return "digest"
	}
	return "decided"
}

// pageID is an approval id from the page's URL, or "" if it does not look
// like one.
func pageID(s string) string {
	if !strings.HasPrefix(s, "ap-") || len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-')
	}) {
		return ""
	}
	return s
}

func (a *approvalServer) securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// Not no-referrer: with it, browsers send "Origin: null" on the form's
	// POSTs, which sameOrigin must refuse.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (a *approvalServer) render(w http.ResponseWriter, status int, d pageData) {
	a.securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b bytes.Buffer
	d.Now = a.o.Now().UTC().Format("2006-01-02 15:04:05 UTC")
	if err := pageTmpl.Execute(&b, d); err != nil {
		a.o.Logger.Error("approvals page", "err", err)
		http.Error(w, "the approvals page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (a *approvalServer) page(w http.ResponseWriter, r *http.Request) {
	if tok := r.URL.Query().Get("token"); tok != "" {
		if a.o.Token == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(a.o.Token)) != 1 {
			a.render(w, http.StatusUnauthorized, pageData{SignIn: true, Problem: "That link's admin token is wrong."})
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name: pageCookie, Value: a.cookie, Path: approvals.PagePath, MaxAge: int((12 * time.Hour).Seconds()),
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
		a.securityHeaders(w)
		http.Redirect(w, r, approvals.PagePath, http.StatusSeeOther) // the token leaves the address bar
		return
	}
	if !a.cookieOK(r) && !a.bearerOK(r) {
		a.render(w, http.StatusUnauthorized, pageData{SignIn: true})
		return
	}
	d := pageData{Authorized: true}
	q := r.URL.Query()
	if id := pageID(q.Get("id")); id != "" {
		if msg, ok := outcomes[q.Get("outcome")]; ok {
			d.Notice = fmt.Sprintf(msg, id)
		}
		if msg, ok := problems[q.Get("problem")]; ok {
			d.Problem = fmt.Sprintf(msg, id)
		}
	}
	now := a.o.Now()
	for _, req := range a.b.Pending() {
		left := req.Expires.Sub(now).Round(time.Second)
		in := "expired"
		if left > 0 {
			in = "in " + left.String()
		}
		d.Pending = append(d.Pending, pendingView{Request: req, ExpiresIn: in})
	}
	a.render(w, http.StatusOK, d)
}

// sameOrigin reports whether a browser's POST comes from this page's
// origin. Browsers send Origin on every POST; a request without it (and
// without Sec-Fetch-Site) is not from a browser form and is refused too.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

func (a *approvalServer) form(w http.ResponseWriter, r *http.Request) {
	switch {
	case a.bearerOK(r):
	case !a.cookieOK(r):
		a.render(w, http.StatusUnauthorized, pageData{SignIn: true})
		return
	case !sameOrigin(r):
		a.render(w, http.StatusForbidden, pageData{Problem: "This form may only be sent from the approvals page itself: go back to " + approvals.PagePath + " and decide there."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		a.render(w, http.StatusBadRequest, pageData{Problem: "The form could not be read: " + err.Error()})
		return
	}
	id := r.PathValue("id")
	back := func(v url.Values) {
		http.Redirect(w, r, approvals.PagePath+"?"+v.Encode(), http.StatusSeeOther)
	}
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		back(url.Values{"problem": {"choice"}, "id": {id}})
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("by"))
	if name == "" {
		back(url.Values{"problem": {"name"}, "id": {id}})
		return
	}
	_, status, err := a.decide(id, approve, "web:"+name, strings.TrimSpace(r.PostForm.Get("reason")), r.PostForm.Get("args_digest"), "web")
	if err != nil {
		back(url.Values{"problem": {problemCode(status, err)}, "id": {id}})
		return
	}
	back(url.Values{"outcome": {verdict(approve)}, "id": {id}})
}

// PolicyHealth adds the policy's state to the health checks of next (the
// admin Handler): GET /healthz and /readyz answer as next does, with
// "policy": {revision, loaded_at, mode, and last_error while a reload is
// rejected}. A rejected reload does not make agenthelm unhealthy: the
// previous revision keeps deciding.
func PolicyHealth(next http.Handler, p PolicyStatus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p == nil || r.Method != http.MethodGet || (r.URL.Path != "/healthz" && r.URL.Path != "/readyz") {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		var body map[string]any
		if json.Unmarshal(rec.body.Bytes(), &body) != nil {
			rec.copyTo(w)
			return
		}
		st := p.Status()
		body["policy"] = policyHealth{Revision: st.Revision, LoadedAt: st.LoadedAt, Mode: st.Mode, LastError: st.LastError, LastErrorAt: st.LastErrorAt}
		writeJSON(w, rec.status, body)
	})
}

type policyHealth struct {
	Revision    string    `json:"revision"`
	LoadedAt    time.Time `json:"loaded_at"`
	Mode        string    `json:"mode"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// bufferedResponse keeps a response so that PolicyHealth can add to it.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// pageHTML is the approvals page: server-rendered, plain forms, no script.
const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if and .Authorized (not .Pending)}}<meta http-equiv="refresh" content="15; url=/approvals">{{end}}
<title>agenthelm approvals{{if .Pending}} ({{len .Pending}}){{end}}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem; color: #1d2330; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 .4rem; }
.muted { color: #5c6578; font-size: .9em; }
.notice, .problem { padding: .6rem .9rem; border-radius: 6px; margin: .8rem 0; }
.notice { background: #e5f5ea; border: 1px solid #8fcf9f; }
.problem { background: #fdecea; border: 1px solid #e59a92; }
article { border: 1px solid #c8cfdb; border-radius: 8px; padding: 1rem 1.2rem; margin: 1rem 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .6rem 0; }
dt { color: #5c6578; }
dd { margin: 0; word-break: break-all; }
pre { background: #f3f5f9; border: 1px solid #dde2ea; border-radius: 6px; padding: .6rem .8rem; overflow-x: auto; margin: .3rem 0 .8rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #e3e7ee; vertical-align: top; }
form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; border-top: 1px solid #e3e7ee; padding-top: .8rem; }
label { display: flex; flex-direction: column; font-size: .9em; color: #5c6578; }
input[type=text] { font: inherit; padding: .3rem .5rem; min-width: 12rem; }
button { font: inherit; padding: .4rem 1.1rem; border-radius: 6px; border: 1px solid; cursor: pointer; }
button.approve { background: #1f7a3a; border-color: #1f7a3a; color: #fff; }
button.deny { background: #fff; border-color: #b3261e; color: #b3261e; }
</style>
</head>
<body>
<h1>agenthelm approvals</h1>
{{with .Notice}}<p class="notice" role="status">{{.}}</p>{{end}}
{{with .Problem}}<p class="problem" role="alert">{{.}}</p>{{end}}
{{if .SignIn}}
<p>This page needs the admin token. Open it once through
<code>/approvals?token=&lt;token&gt;</code>, with the token from the
<code>admin.token</code> file in agenthelm's data directory (or
<code>admin.token</code> in the configuration); a cookie then keeps you signed in on this browser.</p>
<p class="muted">From a terminal: <code>agenthelm approvals list</code>.</p>
{{else if .Authorized}}
{{if not .Pending}}
<p>No calls are waiting for approval. <span class="muted">This page refreshes itself every 15 s.</span></p>
{{else}}
<p>{{len .Pending}} call{{if gt (len .Pending) 1}}s are{{else}} is{{end}} waiting, oldest first. A call is denied when its approval expires.</p>
{{end}}
{{range .Pending}}
<article id="{{.ID}}" data-approval="{{.ID}}">
<h2>{{.Upstream}}/{{.Tool}}</h2>
<div class="muted">{{.ID}} · expires {{.ExpiresIn}} ({{utc .Expires}})</div>
<dl>
<dt>Why held</dt><dd>{{if .Reasons}}{{join .Reasons "; "}}{{else}}(the policy gave no reason){{end}}</dd>
<dt>Who may approve</dt><dd>{{if .Approvers}}{{join .Approvers ", "}}{{else}}anyone with the admin token{{end}}</dd>
<dt>Agent</dt><dd>{{if .Agent}}{{.Agent}}{{else}}(unidentified){{end}}</dd>
<dt>Saga</dt><dd>{{.Saga}}, step {{.Step}}</dd>
<dt>Requested</dt><dd>{{utc .Created}}</dd>
<dt>Argument digest</dt><dd><code>{{.ArgsDigest}}</code></dd>
<dt>Policy decision</dt><dd><code>{{.DecisionID}}</code></dd>
{{range $k, $v := .Labels}}<dt>{{$k}}</dt><dd>{{$v}}</dd>{{end}}
</dl>
<div>Arguments</div>
<pre class="arguments">{{pretty .Arguments}}</pre>
{{if .History}}
<div>Earlier steps of this saga</div>
<table>
<tr><th>#</th><th>Call</th><th>Status</th><th>Arguments</th></tr>
{{range .History}}<tr><td>{{.N}}</td><td>{{.Upstream}}/{{.Tool}}</td><td>{{.Status}}</td><td><pre>{{pretty .Args}}</pre></td></tr>
{{end}}</table>
{{else}}
<div class="muted">This is the saga's first step.</div>
{{end}}
<form method="post" action="/approvals/{{.ID}}">
<input type="hidden" name="args_digest" value="{{.ArgsDigest}}">
<label>Your name <input type="text" name="by" required autocomplete="name"></label>
<label>Reason <input type="text" name="reason" placeholder="journaled; told to the agent on a denial"></label>
<button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button>
</form>
</article>
{{end}}
<p class="muted">Shown at {{.Now}}. <a href="/approvals">Refresh</a></p>
{{end}}
</body>
</html>
`
