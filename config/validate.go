package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fieldError is one problem with the configuration. It reads
// "agenthelm.yaml:14: upstreams.memory.command: problem", or names the
// environment variable that set the field.
type fieldError struct {
	where   string // "file:line", "file", "env NAME" or ""
	field   string // field path, "" for the file as a whole
	problem string
}

func (e *fieldError) Error() string {
	var b strings.Builder
	if e.where != "" {
		b.WriteString(e.where)
		b.WriteString(": ")
	}
	if e.field != "" {
		b.WriteString(e.field)
		b.WriteString(": ")
	}
	b.WriteString(e.problem)
	return b.String()
}

// problems collects validation errors and warnings.
type problems struct {
	c     *Config
	errs  []error
	warns []string
}

func (ps *problems) add(p fieldPath, format string, args ...any) {
	ps.errs = append(ps.errs, ps.c.fieldErr(p, fmt.Sprintf(format, args...)))
}

func (ps *problems) warn(p fieldPath, format string, args ...any) {
	ps.warns = append(ps.warns, ps.c.fieldErr(p, fmt.Sprintf(format, args...)).Error())
}

// fieldErr locates p: the environment variable that set it, else the line
// of p (or of its nearest ancestor written in the file).
func (c *Config) fieldErr(p fieldPath, problem string) *fieldError {
	fe := &fieldError{field: p.String(), problem: problem}
	if name, ok := c.fromEnv[fe.field]; ok {
		fe.where = "env " + name
		return fe
	}
	line := 0
	for i := len(p); i > 0 && line == 0; i-- {
		line = c.lines[p[:i].String()]
	}
	pos := ""
	if line > 0 {
		pos = strconv.Itoa(line)
	}
	fe.where = locate(c.source, pos)
	return fe
}

// Validate checks the whole configuration and reports every problem, joined
// with errors.Join, each as "file:line: field.path: problem". It also fills
// in the defaults of map and list entries (each Upstream's Name, an empty
// transport with url, an empty on_error), compiles every jq expression onto
// its Expr, and records Warnings. It is not safe to call concurrently with
// readers of c.
func (c *Config) Validate() error {
	ps := &problems{c: c}
	c.fill()
	c.checkListen(ps)
	c.checkJournal(ps)
	c.checkPolicy(ps)
	c.checkSaga(ps)
	c.checkApprovals(ps)
	c.checkAdmin(ps)
	c.checkLimits(ps)
	c.checkLog(ps)
	c.checkRedaction(ps)
	c.checkTelemetry(ps)
	c.checkUpstreams(ps)
	c.checkRoutes(ps)
	c.warnings = ps.warns
	return errors.Join(ps.errs...)
}

// fill sets the defaults of entries that Default cannot know about.
func (c *Config) fill() {
	for name, u := range c.Upstreams {
		u.Name = name
		if u.URL != "" && u.Transport == "" {
			u.Transport = TransportStreamableHTTP
		}
		for tn, t := range u.Tools {
			if t.OnError == "" {
				t.OnError = OnErrorUnwind
				u.Tools[tn] = t
			}
		}
		c.Upstreams[name] = u
	}
	for i := range c.Routes {
		if c.Routes[i].OnError == "" {
			c.Routes[i].OnError = OnErrorUnwind
		}
	}
}

func oneOf(ps *problems, p fieldPath, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		ps.add(p, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func positive(ps *problems, p fieldPath, d Duration) {
	if d <= 0 {
		ps.add(p, "must be positive, got %s", d)
	}
}

func (c *Config) checkListen(ps *problems) {
	base := fieldPath{}.key("listen")
	seen := map[string]string{}
	for _, l := range []struct {
		name, addr string
		required   bool
	}{
		{"mcp", c.Listen.MCP, false},
		{"http", c.Listen.HTTP, false},
		{"admin", c.Listen.Admin, true},
	} {
		p := base.key(l.name)
		if l.addr == "" {
			if l.required {
				ps.add(p, "required: the CLI and health checks use it")
			}
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			ps.add(p, "%q is not host:port, like 127.0.0.1:7070", l.addr)
			continue
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil {
			ps.add(p, "%q: port must be a number from 0 to 65535", l.addr)
			continue
		} else if n != 0 {
			key := strings.ToLower(host) + ":" + strconv.FormatUint(n, 10)
			if other, dup := seen[key]; dup {
				ps.add(p, "%s is also listen.%s", l.addr, other)
			}
			seen[key] = l.name
		}
		if !isLoopback(host) {
			ps.warn(p, "%s is not a loopback address: other hosts can connect", l.addr)
		}
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

func (c *Config) checkJournal(ps *problems) {
	p := fieldPath{}.key("journal")
	if strings.TrimSpace(c.Journal.Dir) == "" {
		ps.add(p.key("dir"), "required")
	}
	oneOf(ps, p.key("sync"), c.Journal.Sync, SyncAlways, SyncNone)
	if c.Journal.Retention < Duration(24*time.Hour) {
		ps.add(p.key("retention"), "must be at least 24h, got %s", c.Journal.Retention)
	}
}

func (c *Config) checkPolicy(ps *problems) {
	p := fieldPath{}.key("policy")
	if strings.TrimSpace(c.Policy.Dir) == "" {
		ps.add(p.key("dir"), "required")
	}
	oneOf(ps, p.key("mode"), c.Policy.Mode, ModeEnforce, ModeDryRun)
	b := c.Policy.Bundle
	bp := p.key("bundle")
	if b.URL != "" {
		if err := checkHTTPURL(b.URL); err != nil {
			ps.add(bp.key("url"), "%v", err)
		}
	}
	positive(ps, bp.key("poll"), b.Poll)
	for _, h := range sortedKeys(b.Headers) {
		hp := bp.key("headers").key(h)
		if !isToken(h) {
			ps.add(hp, "is not a valid HTTP header name")
		}
		if err := checkRefs(b.Headers[h]); err != nil {
			ps.add(hp, "%v", err)
		}
	}
	if b.URL == "" && b.PublicKeyFile != "" {
		ps.add(bp.key("public_key_file"), "needs policy.bundle.url")
	}
	if strings.TrimSpace(b.KeyID) == "" {
		ps.add(bp.key("key_id"), "must not be empty (the default is default)")
	}
}

var failureKinds = []string{FailToolError, FailProtocolError, FailTimeout, FailUpstreamDown, FailDenied, FailRejected}

func (c *Config) checkSaga(ps *problems) {
	p := fieldPath{}.key("saga")
	s := c.Saga
	oneOf(ps, p.key("scope"), s.Scope, ScopeAgent, ScopeSession)
	positive(ps, p.key("idle_commit"), s.IdleCommit)
	if s.AgentHeader != "" && !isToken(s.AgentHeader) {
		ps.add(p.key("agent_header"), "%q is not a valid HTTP header name", s.AgentHeader)
	}
	tp := p.key("agent_token")
	switch t := s.AgentToken; {
	case t.KeysFile != "" && t.Secret != "":
		ps.add(tp, "set keys_file or secret, not both")
	case t.Secret != "" && !strings.Contains(t.Secret, "${"):
		ps.add(tp.key("secret"), "write the secret as ${VAR} and put it in the environment, not in the file")
	case t.Secret != "":
		if err := checkRefs(t.Secret); err != nil {
			ps.add(tp.key("secret"), "%v", err)
		}
	case !t.Enabled() && (t.Required || t.Issuer != "" || t.Audience != "" || t.Claim != "sub"):
		ps.add(tp, "needs keys_file or secret to verify tokens with")
	}
	if s.AgentToken.Claim == "" {
		ps.add(tp.key("claim"), "must not be empty (the default is sub)")
	}
	seen := map[string]bool{}
	for i, k := range s.UnwindOn {
		ip := p.key("unwind_on").idx(i)
		switch {
		case !slices.Contains(failureKinds, k):
			ps.add(ip, "%q is not one of %s", k, strings.Join(failureKinds, ", "))
		case seen[k]:
			ps.add(ip, "%q is listed twice", k)
		}
		seen[k] = true
	}
	cp := p.key("compensation")
	if s.Compensation.MaxAttempts < 1 {
		ps.add(cp.key("max_attempts"), "must be at least 1, got %d", s.Compensation.MaxAttempts)
	}
	positive(ps, cp.key("initial_backoff"), s.Compensation.InitialBackoff)
	if s.Compensation.MaxBackoff < s.Compensation.InitialBackoff {
		ps.add(cp.key("max_backoff"), "%s is less than initial_backoff (%s)", s.Compensation.MaxBackoff, s.Compensation.InitialBackoff)
	}
	positive(ps, p.key("open_grace"), s.OpenGrace)
}

func (c *Config) checkApprovals(ps *problems) {
	p := fieldPath{}.key("approvals")
	positive(ps, p.key("timeout"), c.Approvals.Timeout)
	positive(ps, p.key("max_hold"), c.Approvals.MaxHold)
	wp := p.key("webhook")
	if u := c.Approvals.Webhook.URL; u != "" {
		if strings.Contains(u, "${") {
			if err := checkRefs(u); err != nil {
				ps.add(wp.key("url"), "%v", err)
			}
		} else if err := checkHTTPURL(u); err != nil {
			ps.add(wp.key("url"), "%v", err)
		}
	}
	oneOf(ps, wp.key("format"), c.Approvals.Webhook.Format, FormatGeneric, FormatSlack)
}

func (c *Config) checkAdmin(ps *problems) {
	p := fieldPath{}.key("admin")
	a := c.Admin
	if a.Token != "" && a.TokenFile != "" {
		ps.add(p.key("token_file"), "set token or token_file, not both")
	}
	if a.Token != "" {
		if strings.IndexFunc(a.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			ps.add(p.key("token"), "must not contain spaces or control characters")
		} else if len(a.Token) < 16 {
			ps.warn(p.key("token"), "is shorter than 16 characters: easy to guess")
		}
	}
}

func (c *Config) checkLimits(ps *problems) {
	p := fieldPath{}.key("limits")
	if c.Limits.MaxBodyBytes <= 0 {
		ps.add(p.key("max_body_bytes"), "must be positive, got %d", int64(c.Limits.MaxBodyBytes))
	}
	positive(ps, p.key("call_timeout"), c.Limits.CallTimeout)
	if c.Limits.ShutdownGrace < 0 {
		ps.add(p.key("shutdown_grace"), "must not be negative, got %s", c.Limits.ShutdownGrace)
	}
}

func (c *Config) checkLog(ps *problems) {
	p := fieldPath{}.key("log")
	oneOf(ps, p.key("level"), c.Log.Level, "debug", "info", "warn", "error")
	oneOf(ps, p.key("format"), c.Log.Format, "text", "json")
}

func (c *Config) checkRedaction(ps *problems) {
	p := fieldPath{}.key("redaction")
	seen := map[string]bool{}
	for i, k := range c.Redaction.Keys {
		ip := p.key("keys").idx(i)
		lk := strings.ToLower(strings.TrimSpace(k))
		switch {
		case lk == "":
			ps.add(ip, "must not be empty")
		case seen[lk]:
			ps.add(ip, "%q is listed twice (keys match case-insensitively)", k)
		}
		seen[lk] = true
	}
	for i := range c.Redaction.Paths {
		compileInto(ps, p.key("paths").idx(i), &c.Redaction.Paths[i], true)
	}
}

func (c *Config) checkTelemetry(ps *problems) {
	p := fieldPath{}.key("telemetry")
	t := c.Telemetry
	oneOf(ps, p.key("exporter"), t.Exporter, ExporterNone, ExporterOTLP)
	oneOf(ps, p.key("otlp_protocol"), t.OTLPProtocol, ProtocolHTTP, ProtocolGRPC)
	if e := t.OTLPEndpoint; e != "" {
		if strings.Contains(e, "://") {
			if err := checkHTTPURL(e); err != nil {
				ps.add(p.key("otlp_endpoint"), "%v", err)
			}
		} else if _, _, err := net.SplitHostPort(e); err != nil {
			ps.add(p.key("otlp_endpoint"), "%q is neither an http(s) URL nor host:port", e)
		}
		if t.Exporter == ExporterNone {
			ps.warn(p.key("exporter"), "is none, so otlp_endpoint is not used")
		}
	}
	if math.IsNaN(t.SampleRatio) || t.SampleRatio < 0 || t.SampleRatio > 1 {
		ps.add(p.key("sample_ratio"), "must be from 0 to 1, got %v", t.SampleRatio)
	}
}

var upstreamName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (c *Config) checkUpstreams(ps *problems) {
	base := fieldPath{}.key("upstreams")
	for _, name := range c.UpstreamNames() {
		u := c.Upstreams[name]
		p := base.key(name)
		if !upstreamName.MatchString(name) {
			ps.add(p, "upstream names may use only letters, digits, _ and -")
		}
		var kinds []string
		if u.Command != nil {
			kinds = append(kinds, "command")
		}
		if u.URL != "" {
			kinds = append(kinds, "url")
		}
		if u.HTTP != "" {
			kinds = append(kinds, "http")
		}
		switch len(kinds) {
		case 0:
			ps.add(p, "needs one of command (stdio MCP server), url (MCP over HTTP) or http (REST API)")
		case 1:
		default:
			ps.add(p, "has %s: set exactly one", strings.Join(kinds, " and "))
		}
		if u.Command != nil && len(u.Command) == 0 {
			ps.add(p.key("command"), "must name a program")
		}
		if len(u.Command) > 0 && strings.TrimSpace(u.Command[0]) == "" {
			ps.add(p.key("command").idx(0), "must name a program")
		}
		for i, a := range u.Command {
			if strings.ContainsRune(a, 0) {
				ps.add(p.key("command").idx(i), "must not contain a NUL byte")
			}
		}
		if len(u.Command) == 0 {
			if len(u.Env) > 0 {
				ps.add(p.key("env"), "only applies to a command")
			}
			if u.Cwd != "" {
				ps.add(p.key("cwd"), "only applies to a command")
			}
		}
		for _, k := range sortedKeys(u.Env) {
			kp := p.key("env").key(k)
			if k == "" || strings.ContainsAny(k, "=\x00") {
				ps.add(kp, "is not a valid environment variable name")
			}
			if strings.ContainsRune(u.Env[k], 0) {
				ps.add(kp, "must not contain a NUL byte")
			} else if err := checkRefs(u.Env[k]); err != nil {
				ps.add(kp, "%v", err)
			}
		}
		if u.URL != "" {
			if err := checkHTTPURL(u.URL); err != nil {
				ps.add(p.key("url"), "%v", err)
			}
			oneOf(ps, p.key("transport"), u.Transport, TransportStreamableHTTP, TransportSSE)
		} else if u.Transport != "" {
			ps.add(p.key("transport"), "only applies to url")
		}
		if u.HTTP != "" {
			if err := checkHTTPURL(u.HTTP); err != nil {
				ps.add(p.key("http"), "%v", err)
			}
		}
		if len(u.Headers) > 0 && len(u.Command) > 0 {
			ps.add(p.key("headers"), "only applies to url or http")
		}
		for _, k := range sortedKeys(u.Headers) {
			kp := p.key("headers").key(k)
			if !isToken(k) {
				ps.add(kp, "is not a valid HTTP header name")
			}
			if strings.ContainsAny(u.Headers[k], "\r\n\x00") {
				ps.add(kp, "must not contain line breaks or NUL bytes")
			} else if err := checkRefs(u.Headers[k]); err != nil {
				ps.add(kp, "%v", err)
			}
		}
		seenPack := map[string]bool{}
		for i, pk := range u.Packs {
			ip := p.key("packs").idx(i)
			switch {
			case !KnownPacks[pk]:
				ps.add(ip, "unknown pack %q (known: %s)", pk, strings.Join(sortedKeys(KnownPacks), ", "))
			case seenPack[pk]:
				ps.add(ip, "%q is listed twice", pk)
			}
			seenPack[pk] = true
		}
		if len(u.Tools) > 0 && u.Kind() == KindREST {
			ps.add(p.key("tools"), "tool rules are for MCP upstreams; for a REST API use routes")
		}
		for _, tn := range sortedKeys(u.Tools) {
			c.checkTool(ps, p.key("tools").key(tn), tn, u.Tools[tn])
		}
	}
}

func (c *Config) checkTool(ps *problems, p fieldPath, name string, t Tool) {
	if strings.TrimSpace(name) == "" {
		ps.add(p, "a tool name must not be empty")
	}
	for _, call := range []struct {
		key  string
		call *ToolCall
	}{{"compensate", t.Compensate}, {"capture", t.Capture}} {
		if call.call == nil {
			continue
		}
		cp := p.key(call.key)
		if strings.TrimSpace(call.call.Tool) == "" {
			ps.add(cp.key("tool"), "required: the tool to call")
		}
		compileInto(ps, cp.key("args"), &call.call.Args, false)
	}
	flagConflicts(ps, p, t.ReadOnly, t.Irreversible, t.Compensate != nil)
	if t.Capture != nil && t.Compensate == nil {
		ps.warn(p.key("capture"), "nothing uses it without compensate")
	}
	checkRetry(ps, p, t.Retry, t.Idempotent)
	oneOf(ps, p.key("on_error"), t.OnError, OnErrorUnwind, OnErrorContinue)
}

// checkRetry checks the retry block of a tool or route at p.
func checkRetry(ps *problems, p fieldPath, r *Retry, idempotent bool) {
	if r == nil {
		return
	}
	rp := p.key("retry")
	if !idempotent {
		ps.add(rp, "needs idempotent: true (a call that is not idempotent is never re-sent)")
	}
	if r.Attempts < 1 {
		ps.add(rp.key("attempts"), "must be at least 1, got %d", r.Attempts)
	}
	if r.Backoff < 0 {
		ps.add(rp.key("backoff"), "must not be negative, got %s", r.Backoff)
	}
}

// flagConflicts reports contradictory step kinds.
func flagConflicts(ps *problems, p fieldPath, readOnly, irreversible, compensated bool) {
	switch {
	case readOnly && irreversible:
		ps.add(p.key("irreversible"), "a read_only step has no effect to be irreversible")
	case readOnly && compensated:
		ps.add(p.key("compensate"), "a read_only step is never compensated: remove compensate or read_only")
	case irreversible && compensated:
		ps.add(p.key("compensate"), "an irreversible step has no compensation: remove compensate or irreversible")
	}
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

func checkMethod(ps *problems, p fieldPath, m string) {
	switch {
	case m == "":
		ps.add(p, "required")
	case slices.Contains(httpMethods, m):
	case slices.Contains(httpMethods, strings.ToUpper(m)):
		ps.add(p, "%q: write methods in upper case, %s", m, strings.ToUpper(m))
	default:
		ps.add(p, "%q is not an HTTP method (%s)", m, strings.Join(httpMethods, ", "))
	}
}

func (c *Config) checkRoutes(ps *problems) {
	base := fieldPath{}.key("routes")
	seen := map[[3]string]int{}
	tools := map[[2]string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := base.idx(i)
		switch u, ok := c.Upstreams[r.Upstream]; {
		case r.Upstream == "":
			ps.add(p.key("upstream"), "required")
		case !ok:
			ps.add(p.key("upstream"), "no upstream named %q", r.Upstream)
		case u.HTTP == "":
			ps.add(p.key("upstream"), "upstream %q has no http: routes need a REST API", r.Upstream)
		}
		checkMethod(ps, p.key("method"), r.Method)
		switch {
		case r.Path == "":
			ps.add(p.key("path"), "required")
		case !strings.HasPrefix(r.Path, "/"):
			ps.add(p.key("path"), "%q must start with /", r.Path)
		case strings.ContainsAny(r.Path, "?# \t\r\n"):
			ps.add(p.key("path"), "%q must be a plain path, without query, fragment or spaces", r.Path)
		default:
			shape, err := checkRoutePath(r.Path)
			if err != nil {
				ps.add(p.key("path"), "%v", err)
				break
			}
			// Placeholders that differ only in name match the same requests.
			key := [3]string{r.Upstream, r.Method, shape}
			if j, dup := seen[key]; dup && c.Routes[j].Path == r.Path {
				ps.add(p, "same upstream, method and path as routes[%d]", j)
			} else if dup {
				ps.add(p.key("path"), "%q matches the same requests as routes[%d] (%q): placeholders differ only in name", r.Path, j, c.Routes[j].Path)
			} else {
				seen[key] = i
			}
		}
		switch {
		case strings.TrimSpace(r.Tool) == "":
			ps.add(p.key("tool"), "required: the tool name policy, the journal and traces use")
		case strings.HasPrefix(r.Tool, ReservedToolPrefix):
			ps.add(p.key("tool"), "%q: names starting with %s are reserved for agenthelm's control tools", r.Tool, ReservedToolPrefix)
		default:
			// Rules are found by upstream and tool name: a name is one route.
			key := [2]string{r.Upstream, r.Tool}
			if j, dup := tools[key]; dup {
				ps.add(p.key("tool"), "%q is already the tool of routes[%d]: tool names are unique per upstream", r.Tool, j)
			} else {
				tools[key] = i
			}
		}
		if cmp := r.Compensate; cmp != nil {
			cp := p.key("compensate")
			checkMethod(ps, cp.key("method"), cmp.Method)
			compileInto(ps, cp.key("path"), &cmp.Path, true)
			compileInto(ps, cp.key("body"), &cmp.Body, false)
			for _, h := range sortedKeys(cmp.Headers) {
				hp := cp.key("headers").key(h)
				if !isToken(h) {
					ps.add(hp, "is not a valid HTTP header name")
				}
				e := cmp.Headers[h]
				compileInto(ps, hp, &e, true)
				cmp.Headers[h] = e
			}
		}
		flagConflicts(ps, p, r.ReadOnly, r.Irreversible, r.Compensate != nil)
		checkRetry(ps, p, r.Retry, r.Idempotent)
		oneOf(ps, p.key("on_error"), r.OnError, OnErrorUnwind, OnErrorContinue)
	}
}

// compileInto compiles e in place, reporting a parse or compile error at p.
func compileInto(ps *problems, p fieldPath, e *Expr, required bool) {
	e.code = nil
	if e.IsZero() {
		if required {
			ps.add(p, "required: a jq expression")
		}
		return
	}
	code, err := compileJQ(e.Source)
	if err != nil {
		ps.add(p, "%v", err)
		return
	}
	e.code = code
}

// checkHTTPURL accepts an absolute http or https URL without credentials.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials: put them in headers, with ${VAR}", redactUserinfo(u))
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func redactUserinfo(u *url.URL) string {
	c := *u
	c.User = url.User("xxx")
	return c.String()
}

// isToken reports whether s is an HTTP token (a valid header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(b)) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
