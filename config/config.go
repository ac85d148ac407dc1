package config

import (
	"slices"
	"time"
)

// Config is the whole of agenthelm.yaml. Default returns one with every
// default filled in; Load and Parse decode a file over those defaults.
// Consumers treat a loaded Config as read-only.
type Config struct {
	// Listen holds the addresses of the three listeners.
	Listen Listen `yaml:"listen"`
	// Journal configures the durable journal (Badger).
	Journal Journal `yaml:"journal"`
	// Policy configures the OPA policy gate.
	Policy Policy `yaml:"policy"`
	// Saga configures transaction boundaries and unwinding.
	Saga Saga `yaml:"saga"`
	// Approvals configures calls held for a human decision.
	Approvals Approvals `yaml:"approvals"`
	// Admin configures access to the admin API.
	Admin Admin `yaml:"admin"`
	// Limits bounds request sizes and durations.
	Limits Limits `yaml:"limits"`
	// Log configures agenthelm's own log.
	Log Log `yaml:"log"`
	// Redaction names the argument and result values that never leave agenthelm in clear.
	Redaction Redaction `yaml:"redaction"`
	// Telemetry configures OpenTelemetry export.
	Telemetry Telemetry `yaml:"telemetry"`
	// Upstreams are the tool servers, by name. The name appears in URLs
	// (/mcp/<name>), the journal and policy input. Empty: nothing to proxy.
	Upstreams map[string]Upstream `yaml:"upstreams"`
	// Routes say which HTTP requests to REST upstreams are tool calls.
	Routes []Route `yaml:"routes"`

	// Filled in by Parse and Validate.
	source   string            // file name used in messages
	lines    map[string]int    // field path -> line in the file
	fromEnv  map[string]string // field path -> environment variable that set it
	warnings []string
}

// Listen holds listener addresses, each "host:port". A host that is not a
// loopback address (or "localhost") is accepted with a warning: agenthelm
// listens on loopback unless told otherwise. Port 0 picks a free port.
type Listen struct {
	// MCP is the MCP front door (/mcp/<upstream>, legacy SSE under
	// /sse/<upstream>). Empty: no MCP front door.
	MCP string `yaml:"mcp"`
	// HTTP is the HTTP tool proxy for REST upstreams; it listens only when
	// some upstream has http. Empty: no HTTP proxy.
	HTTP string `yaml:"http"`
	// Admin is the admin API, /metrics and health checks. Required: the
	// CLI talks to a running sidecar through it.
	Admin string `yaml:"admin"`
}

// Journal configures the journal.
type Journal struct {
	// Dir is the journal's directory, created on start. Relative paths are
	// relative to agenthelm's working directory. Required.
	Dir string `yaml:"dir"`
	// Sync is "always" (fsync every group commit: survives power loss) or
	// "none" (survives a process crash, not a power loss).
	Sync string `yaml:"sync"`
	// Retention is how long finished sagas stay in the journal (and can
	// still be rolled back by an operator). At least 24h.
	Retention Duration `yaml:"retention"`
}

// Journal sync modes.
const (
	SyncAlways = "always"
	SyncNone   = "none"
)

// Policy configures the policy gate.
type Policy struct {
	// Dir holds the Rego policy (package agenthelm.authz) and its tests.
	// Relative to agenthelm's working directory. Required.
	Dir string `yaml:"dir"`
	// Mode is "enforce" (denials are final) or "dry-run" (every call is
	// forwarded; the would-be decision is journaled and traced).
	Mode string `yaml:"mode"`
	// TestOnReload runs the policy's Rego tests before a reloaded policy is
	// activated; failing tests keep the previous policy. False: reloads are
	// only parsed and compiled.
	TestOnReload bool `yaml:"test_on_reload"`
	// Bundle takes the policy from an OPA bundle server instead of Dir.
	Bundle PolicyBundle `yaml:"bundle"`
}

// PolicyBundle is an OPA bundle server that distributes the policy
// centrally. With a URL, the policy comes from the bundle and Dir is not
// read; the last activated bundle is kept in the journal directory so that
// agenthelm can start when the server cannot be reached.
type PolicyBundle struct {
	// URL is the bundle's http or https address. Empty: no bundle.
	URL string `yaml:"url"`
	// Poll is how often the bundle is fetched again. Must be positive.
	Poll Duration `yaml:"poll"`
	// Headers are sent with every request (Authorization); values may use
	// ${VAR}.
	Headers map[string]string `yaml:"headers"`
	// PublicKeyFile holds the PEM public key bundles must be signed with.
	// Empty: signatures are not checked.
	PublicKeyFile string `yaml:"public_key_file"`
	// KeyID is the key's id in the bundle's signature.
	KeyID string `yaml:"key_id"`
	// Algorithm is the signature's algorithm (RS256, ES256, ...).
	Algorithm string `yaml:"algorithm"`
}

// Policy modes.
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dry-run"
)

// Saga configures transactions.
type Saga struct {
	// Scope is "agent" (every call through this sidecar belongs to the
	// agent's current saga, across upstreams) or "session" (one saga per
	// agent identity, or per MCP session when there is none).
	Scope string `yaml:"scope"`
	// IdleCommit commits a saga after this long with no call in flight.
	// Must be positive.
	IdleCommit Duration `yaml:"idle_commit"`
	// AgentHeader is the HTTP request header that carries the agent's
	// identity. Empty: agents are not identified by a header.
	AgentHeader string `yaml:"agent_header"`
	// AgentToken verifies agents' bearer tokens; a verified token's claim
	// is the agent's identity, ahead of the header and MCP clientInfo.
	AgentToken AgentToken `yaml:"agent_token"`
	// ControlTools adds agenthelm_commit and agenthelm_rollback to every
	// MCP upstream's tool list so the model can end or undo its saga.
	ControlTools bool `yaml:"control_tools"`
	// UnwindOn lists the failures of a step that unwind its saga:
	// tool_error, protocol_error, timeout, upstream_down, denied (by
	// policy), approval_rejected (rejected or expired). Empty: no failure
	// unwinds automatically (sagas still commit when idle and can be rolled
	// back by an operator).
	UnwindOn []string `yaml:"unwind_on"`
	// Compensation configures how compensations are retried.
	Compensation Compensation `yaml:"compensation"`
	// OpenGrace is how long a saga left open by a crash may stay open after
	// a restart before it is aborted and unwound. Must be positive.
	OpenGrace Duration `yaml:"open_grace"`
}

// AgentToken says how agents' bearer tokens (JWT, in the Authorization
// header of requests to the MCP and HTTP front doors) are verified. With
// neither KeysFile nor Secret set, tokens are not looked at (and, like
// every credential, never passed upstream).
type AgentToken struct {
	// KeysFile holds the token issuer's public keys: a JWK set (JSON) or
	// PEM public keys. Relative to agenthelm's working directory.
	KeysFile string `yaml:"keys_file"`
	// Secret is a shared HS256 secret of at least 32 bytes. It should be
	// "${VAR}": it is resolved when agenthelm starts.
	Secret string `yaml:"secret"`
	// Claim names the claim that identifies the agent.
	Claim string `yaml:"claim"`
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// Required refuses requests without a token (401). False: requests
	// without one are identified by the header or clientInfo as before;
	// a token that is present must verify either way.
	Required bool `yaml:"required"`
}

// Enabled reports whether agents' tokens are verified.
func (t AgentToken) Enabled() bool { return t.KeysFile != "" || t.Secret != "" }

// Saga scopes.
const (
	ScopeAgent   = "agent"
	ScopeSession = "session"
)

// Failure kinds for Saga.UnwindOn.
const (
	FailToolError     = "tool_error"
	FailProtocolError = "protocol_error"
	FailTimeout       = "timeout"
	FailUpstreamDown  = "upstream_down"
	FailDenied        = "denied"
	FailRejected      = "approval_rejected"
)

// Compensation configures compensation retries: capped exponential backoff,
// then the saga is stuck.
type Compensation struct {
	// MaxAttempts is how many times a compensation is tried before the saga
	// is marked stuck. At least 1.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the wait before the second attempt; it doubles
	// with each further attempt. Must be positive.
	InitialBackoff Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the wait. At least InitialBackoff.
	MaxBackoff Duration `yaml:"max_backoff"`
	// ContinuePastFailure goes on to compensate earlier steps when one
	// compensation is stuck. False: unwinding stops at the stuck step (strict
	// reverse order).
	ContinuePastFailure bool `yaml:"continue_past_failure"`
}

// Approvals configures calls held for approval.
type Approvals struct {
	// Timeout is how long an approval may stay undecided; then it expires,
	// and expiry means deny. Must be positive.
	Timeout Duration `yaml:"timeout"`
	// MaxHold is the hard limit on how long one agent request is held open
	// waiting for a decision, even while progress notifications keep the
	// client waiting. Must be positive.
	MaxHold Duration `yaml:"max_hold"`
	// Webhook is notified of every new approval request.
	Webhook Webhook `yaml:"webhook"`
}

// Webhook is an HTTP endpoint told about approval requests.
type Webhook struct {
	// URL receives a POST per approval request. It may be, or contain,
	// "${VAR}" (a Slack webhook URL is a secret): see ResolvedURL. Empty: no
	// webhook (the CLI and admin API still work).
	URL string `yaml:"url"`
	// Format is the body's shape: "generic" (JSON describing the request)
	// or "slack" (a Slack incoming-webhook message).
	Format string `yaml:"format"`
}

// Webhook formats.
const (
	FormatGeneric = "generic"
	FormatSlack   = "slack"
)

// Admin configures the admin API's credentials.
type Admin struct {
	// Token is the bearer token the admin API requires. Empty (and no
	// TokenFile): a token is generated into the journal directory on first
	// start and read from there afterwards.
	Token string `yaml:"token"`
	// TokenFile is a file holding the token (surrounding whitespace is
	// ignored). Not together with Token.
	TokenFile string `yaml:"token_file"`
}

// Limits bounds what agenthelm accepts and how long it waits.
type Limits struct {
	// MaxBodyBytes is the largest request or frame accepted from an agent
	// or upstream ("4MiB", "512KiB" or a number of bytes). Must be positive.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// CallTimeout is how long a forwarded call may take upstream before its
	// step is in doubt. Must be positive.
	CallTimeout Duration `yaml:"call_timeout"`
	// ShutdownGrace is how long shutdown waits for calls in flight. Zero:
	// in-flight calls are abandoned at once (and their steps are in doubt).
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// Log configures agenthelm's log (on standard error).
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Redaction names values that are replaced by "[REDACTED]" wherever
// agenthelm shows or exports call arguments and results (logs, traces,
// approval notifications, CLI and admin API output).
type Redaction struct {
	// Keys are object keys, matched case-insensitively at any depth. Empty:
	// no key is redacted.
	Keys []string `yaml:"keys"`
	// Paths are jq paths into the call document (.args, .result, .request,
	// .response), such as .args.card.number. Empty: none.
	Paths []Expr `yaml:"paths"`
}

// Telemetry configures OpenTelemetry.
type Telemetry struct {
	// Exporter is "none" or "otlp". When the file leaves it out, setting
	// OTLPEndpoint (or OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT in the environment) selects otlp.
	Exporter string `yaml:"exporter"`
	// OTLPEndpoint is the collector's address, e.g. http://127.0.0.1:4318
	// (HTTP) or 127.0.0.1:4317 (gRPC). Empty: the OTEL_EXPORTER_OTLP_*
	// variables, or the exporter's own default.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// OTLPProtocol is "http" (OTLP/HTTP protobuf) or "grpc".
	OTLPProtocol string `yaml:"otlp_protocol"`
	// Insecure sends OTLP without TLS (gRPC; for HTTP the URL scheme decides).
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the fraction of traces kept, 0 to 1.
	SampleRatio float64 `yaml:"sample_ratio"`
	// CaptureArguments records tool arguments and results on spans
	// (gen_ai.tool.call.arguments/result), after redaction. False: never.
	CaptureArguments bool `yaml:"capture_arguments"`
}

// Telemetry exporters and OTLP protocols.
const (
	ExporterNone = "none"
	ExporterOTLP = "otlp"
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// Upstream is one tool server. Exactly one of Command (MCP over stdio), URL
// (MCP over HTTP) or HTTP (a REST API) is set.
type Upstream struct {
	// Name is the upstream's key in the upstreams map, filled in by Parse
	// and Validate.
	Name string `yaml:"-"`

	// Command starts a stdio MCP server: the program and its arguments.
	Command []string `yaml:"command,omitempty"`
	// Env adds variables to the server process's environment. Values may
	// hold "${VAR}", read from agenthelm's environment when the process is
	// started (ResolvedEnv); the journal records only the names.
	Env map[string]string `yaml:"env,omitempty"`
	// Cwd is the server process's working directory. Empty: agenthelm's.
	Cwd string `yaml:"cwd,omitempty"`

	// URL is an MCP server's HTTP endpoint.
	URL string `yaml:"url,omitempty"`
	// Transport is "streamable-http" or "sse" (legacy HTTP+SSE), only with
	// URL. Empty with URL: streamable-http.
	Transport string `yaml:"transport,omitempty"`

	// HTTP is a REST API's base URL, the target of routes.
	HTTP string `yaml:"http,omitempty"`

	// Headers are sent with every request to URL or HTTP. Values may hold
	// "${VAR}" (ResolvedHeaders). Not with Command.
	Headers map[string]string `yaml:"headers,omitempty"`
	// Trusted makes agenthelm believe this server's tool annotations
	// (readOnlyHint, idempotentHint, destructiveHint). False: annotations
	// are ignored and every tool is taken as writing, destructive and not
	// idempotent unless Tools says otherwise.
	Trusted bool `yaml:"trusted,omitempty"`
	// Packs are ready-made compensator packs by name (see KnownPacks).
	// Rules in Tools take precedence over a pack's.
	Packs []string `yaml:"packs,omitempty"`
	// Tools are rules for this server's tools, by tool name (MCP only).
	Tools map[string]Tool `yaml:"tools,omitempty"`
}

// Transports for Upstream.Transport.
const (
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
)

// UpstreamKind says how agenthelm talks to an upstream.
type UpstreamKind string

// Upstream kinds.
const (
	KindStdio   UpstreamKind = "stdio"    // Command
	KindMCPHTTP UpstreamKind = "mcp-http" // URL
	KindREST    UpstreamKind = "http"     // HTTP
)

// Kind reports which of Command, URL and HTTP is set ("" for none; a valid
// Config has exactly one).
func (u Upstream) Kind() UpstreamKind {
	switch {
	case len(u.Command) > 0:
		return KindStdio
	case u.URL != "":
		return KindMCPHTTP
	case u.HTTP != "":
		return KindREST
	}
	return ""
}

// Tool holds the rules for one MCP tool.
type Tool struct {
	// Compensate is the call that undoes this tool's effect, made on the
	// same upstream. Nil: no compensator from config (a pack may supply
	// one; otherwise the step is irreversible unless read-only).
	Compensate *ToolCall `yaml:"compensate,omitempty"`
	// Capture is a call made before this tool to read the pre-image that
	// Compensate needs; its result is .capture in Compensate's expression.
	// Nil: nothing is captured.
	Capture *ToolCall `yaml:"capture,omitempty"`
	// ReadOnly marks the tool as having no effect: journaled, never
	// compensated. False: read-only only if a trusted upstream says so.
	ReadOnly bool `yaml:"read_only,omitempty"`
	// Irreversible marks the tool as a pivot that cannot be undone (the
	// default policy holds such calls for approval).
	Irreversible bool `yaml:"irreversible,omitempty"`
	// Idempotent allows forward retries (Retry) with the same idempotency
	// key. False: idempotent only if a trusted upstream says so.
	Idempotent bool `yaml:"idempotent,omitempty"`
	// Retry retries the forward call on timeouts and transport failures.
	// Only with Idempotent. Nil: a failed call is not re-sent.
	Retry *Retry `yaml:"retry,omitempty"`
	// OnError is "unwind" (a failure listed in saga.unwind_on unwinds the
	// saga) or "continue" (failures are reported to the agent and the saga
	// goes on). Empty: unwind.
	OnError string `yaml:"on_error,omitempty"`
	// ErrorsMayLeaveEffects compensates this step even when it returned a
	// tool error. False: a step that failed with a tool error is taken to
	// have done nothing.
	ErrorsMayLeaveEffects bool `yaml:"errors_may_leave_effects,omitempty"`
}

// OnError values.
const (
	OnErrorUnwind   = "unwind"
	OnErrorContinue = "continue"
)

// ToolCall is a call to another tool of the same upstream whose arguments
// are built by a jq expression.
type ToolCall struct {
	// Tool is the tool to call. Required.
	Tool string `yaml:"tool"`
	// Args is a jq expression producing the call's arguments object. It
	// sees .args (the original arguments), .result (the original result, in
	// Compensate) and .capture (Capture's result). Empty: no arguments.
	Args Expr `yaml:"args,omitempty"`
}

// Retry configures forward retries of an idempotent tool.
type Retry struct {
	// Attempts is the most times the call is sent, the first included.
	// At least 1 (1: no retry).
	Attempts int `yaml:"attempts"`
	// Backoff is the wait before the first retry; it doubles for each
	// further one. Zero: retry at once.
	Backoff Duration `yaml:"backoff"`
}

// Route makes matching HTTP requests to a REST upstream tool calls.
type Route struct {
	// Upstream names an upstream that has http. Required.
	Upstream string `yaml:"upstream"`
	// Method is the request's HTTP method, in upper case. Required.
	Method string `yaml:"method"`
	// Path is the request path after /<upstream>, starting with "/". A
	// segment written {name} matches any one non-empty segment (except "."
	// and ".."), which compensations see as .request.params.name; a literal
	// segment wins over a placeholder. Required.
	Path string `yaml:"path"`
	// Tool is the tool name the call gets in policy input, the journal and
	// traces, unique per upstream among routes. Required.
	Tool string `yaml:"tool"`
	// Compensate is the request that undoes this one. Nil: none (the step
	// is irreversible unless read-only).
	Compensate *HTTPCall `yaml:"compensate,omitempty"`
	// ReadOnly marks the request as having no effect.
	ReadOnly bool `yaml:"read_only,omitempty"`
	// Irreversible marks the request as a pivot that cannot be undone.
	Irreversible bool `yaml:"irreversible,omitempty"`
	// Idempotent marks the request as safe to re-send with the same
	// Idempotency-Key.
	Idempotent bool `yaml:"idempotent,omitempty"`
	// Retry re-sends the request on timeouts and transport failures, with
	// the same Idempotency-Key. Only with Idempotent. Nil: never re-sent.
	Retry *Retry `yaml:"retry,omitempty"`
	// OnError is "unwind" (an error status, or another failure listed in
	// saga.unwind_on, unwinds the saga) or "continue" (the failure is
	// relayed and the saga goes on). Empty: unwind.
	OnError string `yaml:"on_error,omitempty"`
	// ErrorsMayLeaveEffects compensates the request even when it got an
	// error status. False: a request answered 4xx or 5xx did nothing.
	ErrorsMayLeaveEffects bool `yaml:"errors_may_leave_effects,omitempty"`
}

// HTTPCall is a request to the same REST upstream built with jq. Its
// expressions see .request {method, path, params, query, headers, body}
// and .response {status, headers, body} of the original call, and
// .capture.
type HTTPCall struct {
	// Method is the HTTP method, in upper case. Required.
	Method string `yaml:"method"`
	// Path is a jq expression producing the path (a string starting with
	// "/"): a literal path is written as a jq string, '"/v1/refunds"'.
	// Required.
	Path Expr `yaml:"path"`
	// Body is a jq expression producing the JSON body. Empty: no body.
	Body Expr `yaml:"body,omitempty"`
	// Headers are extra request headers whose values are jq expressions
	// producing strings. Empty: none beyond Idempotency-Key.
	Headers map[string]Expr `yaml:"headers,omitempty"`
}

// KnownPacks are the compensator pack names that upstreams.*.packs may
// use. The package providing the packs registers them here before Load or
// Validate runs (from an init function or main).
var KnownPacks = map[string]bool{"memory": true, "filesystem": true}

// Default returns a Config with every default filled in. It has no
// upstreams and no routes.
func Default() *Config {
	return &Config{
		Listen: Listen{
			MCP:   "127.0.0.1:7070",
			HTTP:  "127.0.0.1:7080",
			Admin: "127.0.0.1:7071",
		},
		Journal: Journal{
			Dir:       "./agenthelm-data",
			Sync:      SyncAlways,
			Retention: Duration(720 * time.Hour),
		},
		Policy: Policy{
			Dir:    "./policies",
			Mode:   ModeEnforce,
			Bundle: PolicyBundle{Poll: Duration(60 * time.Second), Headers: map[string]string{}, KeyID: "default", Algorithm: "RS256"},
		},
		Saga: Saga{
			Scope:       ScopeAgent,
			IdleCommit:  Duration(60 * time.Second),
			AgentHeader: "X-Agent-Id",
			AgentToken:  AgentToken{Claim: "sub"},
			UnwindOn:    []string{FailToolError, FailProtocolError, FailTimeout, FailUpstreamDown, FailRejected},
			Compensation: Compensation{
				MaxAttempts:    8,
				InitialBackoff: Duration(time.Second),
				MaxBackoff:     Duration(5 * time.Minute),
			},
			OpenGrace: Duration(5 * time.Minute),
		},
		Approvals: Approvals{
			Timeout: Duration(15 * time.Minute),
			MaxHold: Duration(time.Hour),
			Webhook: Webhook{Format: FormatGeneric},
		},
		Limits: Limits{
			MaxBodyBytes:  4 * MiB,
			CallTimeout:   Duration(60 * time.Second),
			ShutdownGrace: Duration(10 * time.Second),
		},
		Log: Log{Level: "info", Format: "text"},
		Redaction: Redaction{
			Keys:  []string{"password", "token", "secret", "authorization", "api_key", "card_number"},
			Paths: []Expr{},
		},
		Telemetry: Telemetry{
			Exporter:     ExporterNone,
			OTLPProtocol: ProtocolHTTP,
			SampleRatio:  1.0,
		},
		Upstreams: map[string]Upstream{},
		Routes:    []Route{},
	}
}

// UpstreamNames returns the names of the configured upstreams, sorted.
func (c *Config) UpstreamNames() []string {
	names := make([]string, 0, len(c.Upstreams))
	for name := range c.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Source returns the file name the Config was loaded from ("" if none).
func (c *Config) Source() string { return c.source }

// Warnings returns what the last Validate found acceptable but worth a
// look, such as a listener on a non-loopback address. Each names its
// field like a validation error.
func (c *Config) Warnings() []string { return slices.Clone(c.warnings) }
