package policy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/agenthelm/agenthelm/toolcall"
)

// InputSchema is the JSON Schema (draft 2020-12) of the input document.
//
//go:embed input.schema.json
var InputSchema []byte

// InputVersion names the schema of the input document. Policies may check it;
// a change that is not backwards compatible gets a new version.
const InputVersion = "agenthelm.policy/v1"

// Agent identity sources (AgentInfo.Source).
const (
	AgentFromHeader     = "header"      // a configured request header
	AgentFromToken      = "token"       // the subject of the bearer token
	AgentFromClientInfo = "client_info" // MCP clientInfo.name
	AgentFromSession    = "session"     // no identity: the MCP session stands in for it
)

// Step statuses as policies see them (StepSummary.Status). The saga engine
// maps its own states onto these.
const (
	StepPending     = "pending"     // allowed and not finished: held for approval or in flight
	StepSucceeded   = "succeeded"   // the upstream answered with a result that is not an error
	StepFailed      = "failed"      // tool error, protocol error, timeout or cancellation
	StepDenied      = "denied"      // never forwarded: denied by policy or by an approver, or expired
	StepCompensated = "compensated" // undone by its compensator
	StepStuck       = "stuck"       // its compensation failed for good
)

// Input is the document a policy sees as `input`. Its JSON form is the
// versioned contract described in docs/POLICY.md and policy/input.schema.json;
// every field is always present (empty objects and arrays rather than null)
// except the optional transport fields, which follow toolcall.Transport.
type Input struct {
	// Version is InputVersion (empty means InputVersion).
	Version string `json:"version"`
	// Tool is the tool being called and what agenthelm knows about it.
	Tool ToolInfo `json:"tool"`
	// Arguments are the call's arguments exactly as the agent sent them
	// (for MCP, params.arguments; for HTTP routes, the JSON body). Empty
	// means {}.
	Arguments json.RawMessage `json:"arguments"`
	// Transport says how the call arrived.
	Transport toolcall.Transport `json:"transport"`
	// Agent is who is calling.
	Agent AgentInfo `json:"agent"`
	// Saga is the transaction the call would join.
	Saga SagaInfo `json:"saga"`
	// Time is when the call arrived, in UTC.
	Time TimeInfo `json:"time"`
}

// ToolInfo describes the called tool.
type ToolInfo struct {
	// Name is the tool's name (unique only per upstream).
	Name string `json:"name"`
	// Upstream is the configured name of the server the call goes to.
	Upstream string `json:"upstream"`
	// Annotations are the tool's MCP annotations (readOnlyHint, ...) when the
	// upstream is trusted, and empty otherwise: a policy can rely on them.
	Annotations map[string]any `json:"annotations"`
	// HasCompensator says a compensator is configured, so the step can be undone.
	HasCompensator bool `json:"has_compensator"`
	// ReadOnly says the call changes nothing (config, or readOnlyHint from a
	// trusted upstream).
	ReadOnly bool `json:"read_only"`
	// Irreversible says the configuration marks the tool as a pivot that can
	// never be undone, whatever else is declared.
	Irreversible bool `json:"irreversible"`
	// Idempotent says repeating the call has no further effect.
	Idempotent bool `json:"idempotent"`
}

// AgentInfo is the caller's identity.
type AgentInfo struct {
	// ID identifies the agent; empty when nothing identifies it.
	ID string `json:"id"`
	// Source says where ID came from: one of the AgentFrom constants.
	Source string `json:"source"`
	// Client is what the agent said about itself (MCP clientInfo).
	Client toolcall.ClientInfo `json:"client"`
}

// SagaInfo is what the saga engine knows about the call's saga.
type SagaInfo struct {
	// ID is the saga's id.
	ID string `json:"id"`
	// Steps are the saga's earlier steps, oldest first. The engine may pass
	// only the most recent ones; Counts always covers the whole saga.
	Steps []StepSummary `json:"steps"`
	// Counts counts the saga's steps by status (the Step constants), plus
	// "total". NewInput computes it from Steps when it is nil.
	Counts map[string]int `json:"counts"`
	// ElapsedSeconds is the time since the saga's first step.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Amounts adds up the amounts in the arguments of Steps by tool, status
	// and argument (see AmountTotal). When it is nil, it is computed from
	// Steps as the input is converted or marshaled.
	Amounts []AmountTotal `json:"amounts"`
	// RecentCalls counts the saga's calls of the last minute by
	// "<upstream>/<tool>" (see CountRecent). When it is nil, it is counted
	// from Steps.
	RecentCalls map[string]int `json:"recent_calls"`
}

// StepSummary is one earlier step of the saga.
type StepSummary struct {
	Tool     string `json:"tool"`
	Upstream string `json:"upstream"`
	// Status is one of the Step constants.
	Status string `json:"status"`
	// Arguments are the step's arguments as journaled. Empty means {}.
	Arguments json.RawMessage `json:"arguments"`
	// Time is when the step was called (RFC 3339, UTC, milliseconds).
	Time string `json:"time"`
	// Unix is Time in seconds since the epoch.
	Unix int64 `json:"unix"`

	// memo keeps the summary's AST value once converted, shared by the
	// copies of a summary made by NewStepSummary: a saga engine that
	// hands the same summaries to every call of a saga has each converted
	// once, without the step cache's hashing of its arguments. A copy
	// that was changed since does not match the memo and is converted
	// anew.
	memo *stepMemo
}

// stepMemo is a StepSummary's converted value, and the summary it is of.
type stepMemo struct{ v atomic.Pointer[memoEntry] }

type memoEntry struct {
	of  StepSummary // memo nil
	val cachedStep
}

// sameStep reports whether two summaries are the same step: the same
// fields, and arguments in the same bytes.
func sameStep(a, b *StepSummary) bool {
	return a.Tool == b.Tool && a.Upstream == b.Upstream && a.Status == b.Status && a.Time == b.Time && a.Unix == b.Unix &&
		len(a.Arguments) == len(b.Arguments) && unsafe.SliceData(a.Arguments) == unsafe.SliceData(b.Arguments)
}

// TimeInfo is a point in time in the forms policies compare most easily.
type TimeInfo struct {
	Unix    int64  `json:"unix"`
	RFC3339 string `json:"rfc3339"`
	// Weekday is the English day name ("Monday").
	Weekday string `json:"weekday"`
	// Hour is 0-23.
	Hour int `json:"hour"`
}

// NewTimeInfo describes t in UTC.
func NewTimeInfo(t time.Time) TimeInfo {
	t = t.UTC()
	return TimeInfo{Unix: t.Unix(), RFC3339: t.Format(time.RFC3339), Weekday: t.Weekday().String(), Hour: t.Hour()}
}

// NewStepSummary describes an earlier step of a saga.
func NewStepSummary(tool, upstream, status string, args json.RawMessage, at time.Time) StepSummary {
	at = at.UTC()
	return StepSummary{
		Tool: tool, Upstream: upstream, Status: status, Arguments: args,
		Time: at.Format("2006-01-02T15:04:05.000Z07:00"), Unix: at.Unix(),
		memo: &stepMemo{},
	}
}

// NewInput builds the input document for call. tool, agent and saga carry
// what the saga engine resolved; empty tool name and upstream, and an empty
// agent client, are taken from call. Saga counts are computed from the steps
// when saga.Counts is nil.
func NewInput(call *toolcall.Call, tool ToolInfo, agent AgentInfo, saga SagaInfo, now time.Time) Input {
	if tool.Name == "" {
		tool.Name = call.Tool
	}
	if tool.Upstream == "" {
		tool.Upstream = call.Upstream
	}
	if agent.Client == (toolcall.ClientInfo{}) {
		agent.Client = call.Client
	}
	if saga.Counts == nil {
		saga.Counts = CountSteps(saga.Steps)
	}
	return Input{
		Version:   InputVersion,
		Tool:      tool,
		Arguments: call.Arguments,
		Transport: call.Transport,
		Agent:     agent,
		Saga:      saga,
		Time:      NewTimeInfo(now),
	}
}

// CountSteps counts steps by status, plus "total".
func CountSteps(steps []StepSummary) map[string]int {
	counts := map[string]int{"total": len(steps)}
	for _, s := range steps {
		counts[s.Status]++
	}
	return counts
}

// MarshalJSON writes the document exactly as policies see it: nil maps,
// slices and arguments become {} or [].
func (in Input) MarshalJSON() ([]byte, error) {
	type plain Input // no methods: no recursion
	n := in.normalized()
	return json.Marshal(plain(n))
}

// emptyObject is what absent arguments become.
var emptyObject = json.RawMessage(`{}`)

func (in Input) normalized() Input {
	if in.Version == "" {
		in.Version = InputVersion
	}
	if isEmptyJSON(in.Arguments) {
		in.Arguments = emptyObject
	}
	if in.Tool.Annotations == nil {
		in.Tool.Annotations = map[string]any{}
	}
	if in.Saga.Counts == nil {
		in.Saga.Counts = map[string]int{}
	}
	steps := make([]StepSummary, len(in.Saga.Steps))
	for i, s := range in.Saga.Steps {
		if isEmptyJSON(s.Arguments) {
			s.Arguments = emptyObject
		}
		steps[i] = s
	}
	in.Saga.Steps = steps
	if in.Saga.Amounts == nil {
		in.Saga.Amounts = AmountTotals(steps)
	}
	if in.Saga.RecentCalls == nil {
		in.Saga.RecentCalls = CountRecent(steps, in.Time.Unix)
	}
	return in
}

func isEmptyJSON(raw json.RawMessage) bool { return len(bytes.TrimSpace(raw)) == 0 }

// errBadArguments wraps arguments that are not valid JSON.
var errBadArguments = errors.New("arguments are not valid JSON")

// Value converts the input to the AST value OPA evaluates, without a JSON
// round trip of the whole document (see BenchmarkInputConversion). The value
// equals the one OPA would build from the document's JSON.
func (in *Input) Value() (ast.Value, error) { return in.value(nil, nil) }

// value is Value with a cache of earlier steps' values and one of the parts
// that repeat from call to call (each nil: none). A saga's earlier steps
// come back in every later call's input, so with the cache each is
// converted about once.
func (in *Input) value(cache *stepCache, parts *partCache) (ast.Value, error) {
	v, _, err := in.convert(cache, parts)
	return v, err
}

// convert is value, and also returns the value of input.tool if parts
// shares it between inputs (nil otherwise): the key of the tool rule cache.
func (in *Input) convert(cache *stepCache, parts *partCache) (_ ast.Value, sharedTool ast.Value, err error) {
	args, err := jsonValue(in.Arguments)
	if err != nil {
		return nil, nil, fmt.Errorf("input.arguments: %w", err)
	}
	steps := make([]*ast.Term, len(in.Saga.Steps))
	var stepAmounts [][]stepAmount // saga.amounts, unless given
	if in.Saga.Amounts == nil {
		stepAmounts = make([][]stepAmount, len(in.Saga.Steps))
	}
	for i := range in.Saga.Steps {
		var as []stepAmount
		if steps[i], as, err = cache.step(&in.Saga.Steps[i]); err != nil {
			return nil, nil, fmt.Errorf("input.saga.steps[%d].arguments: %w", i, err)
		}
		if stepAmounts != nil {
			stepAmounts[i] = as
		}
	}
	var amounts ast.Value
	if stepAmounts != nil {
		amounts = amountsValue(groupAmounts(in.Saga.Steps, stepAmounts), parts)
	} else if amounts, err = amountTotalsValue(in.Saga.Amounts); err != nil {
		return nil, nil, err
	}
	recent := in.Saga.RecentCalls
	if recent == nil {
		recent = CountRecent(in.Saga.Steps, in.Time.Unix)
	}
	var tool, transport, agent, at ast.Value
	if parts != nil {
		var shared bool
		tool, shared, err = parts.tool(&in.Tool)
		if shared {
			sharedTool = tool
		}
		transport, agent, at = parts.transport(&in.Transport), parts.agent(&in.Agent), parts.timeOf(&in.Time)
	} else {
		tool, err = toolValue(&in.Tool)
		transport, agent, at = transportValue(&in.Transport), agentValue(&in.Agent), timeValue(&in.Time)
	}
	if err != nil {
		return nil, nil, err
	}
	counts := make([][2]*ast.Term, 0, len(in.Saga.Counts))
	for k, v := range in.Saga.Counts {
		counts = append(counts, item(k, intValue(int64(v))))
	}

	version := in.Version
	if version == "" {
		version = InputVersion
	}
	return ast.NewObject(
		item("version", ast.String(version)),
		item("tool", tool),
		item("arguments", args),
		item("transport", transport),
		item("agent", agent),
		item("saga", ast.NewObject(
			item("id", ast.String(in.Saga.ID)),
			item("steps", ast.NewArray(steps...)),
			item("counts", ast.NewObject(counts...)),
			item("elapsed_seconds", floatValue(in.Saga.ElapsedSeconds)),
			item("amounts", amounts),
			item("recent_calls", recentValue(recent)),
		)),
		item("time", at),
	), sharedTool, nil
}

// toolValue converts the tool.
func toolValue(t *ToolInfo) (ast.Value, error) {
	annotations, err := ast.InterfaceToValue(t.Annotations)
	if err != nil {
		return nil, fmt.Errorf("input.tool.annotations: %w", err)
	}
	return ast.NewObject(
		item("name", ast.String(t.Name)),
		item("upstream", ast.String(t.Upstream)),
		item("annotations", annotations),
		item("has_compensator", ast.Boolean(t.HasCompensator)),
		item("read_only", ast.Boolean(t.ReadOnly)),
		item("irreversible", ast.Boolean(t.Irreversible)),
		item("idempotent", ast.Boolean(t.Idempotent)),
	), nil
}

// agentValue converts the agent.
func agentValue(a *AgentInfo) ast.Value {
	return ast.NewObject(
		item("id", ast.String(a.ID)),
		item("source", ast.String(a.Source)),
		item("client", clientValue(a.Client)),
	)
}

// timeValue converts the time.
func timeValue(t *TimeInfo) ast.Value {
	return ast.NewObject(
		item("unix", intValue(t.Unix)),
		item("rfc3339", ast.String(t.RFC3339)),
		item("weekday", ast.String(t.Weekday)),
		item("hour", intValue(int64(t.Hour))),
	)
}

// stepValue converts one earlier step, and finds the amounts in its
// arguments.
func stepValue(s *StepSummary) (*ast.Term, []stepAmount, error) {
	args, err := jsonValue(s.Arguments)
	if err != nil {
		return nil, nil, err
	}
	return ast.ObjectTerm(
		item("tool", ast.String(s.Tool)),
		item("upstream", ast.String(s.Upstream)),
		item("status", ast.String(s.Status)),
		item("arguments", args),
		item("time", ast.String(s.Time)),
		item("unix", intValue(s.Unix)),
	), amountsOf(args), nil
}

// amountTotalsValue converts amounts given in SagaInfo.Amounts.
func amountTotalsValue(amounts []AmountTotal) (ast.Value, error) {
	terms := make([]*ast.Term, len(amounts))
	for i, a := range amounts {
		var total ast.Value
		switch t := a.Total.(type) {
		case json.Number:
			total = ast.Number(t)
		case string:
			total = ast.String(t)
		default:
			return nil, fmt.Errorf("input.saga.amounts[%d].total: %T, want a json.Number or a string", i, a.Total)
		}
		terms[i] = ast.ObjectTerm(
			item("upstream", ast.String(a.Upstream)),
			item("tool", ast.String(a.Tool)),
			item("status", ast.String(a.Status)),
			item("argument", ast.String(a.Argument)),
			item("total", total),
		)
	}
	return ast.NewArray(terms...), nil
}

// keyTerms are the input's fixed object keys, built once: AST values are
// never changed once built, so every input can share them.
var keyTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{
		"version", "tool", "name", "upstream", "annotations", "has_compensator", "read_only", "irreversible", "idempotent",
		"arguments", "transport", "kind", "protocol", "protocol_version", "session_id", "remote_addr", "method", "path", "headers",
		"agent", "id", "source", "client", "saga", "steps", "status", "counts", "elapsed_seconds", "time", "unix", "rfc3339", "weekday", "hour",
		"amounts", "argument", "total", "recent_calls", "calls", "params", "query",
		StepPending, StepSucceeded, StepFailed, StepDenied, StepCompensated, StepStuck,
	} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

// item is a key-value pair with a fixed key.
func item(key string, v ast.Value) [2]*ast.Term {
	k, ok := keyTerms[key]
	if !ok {
		k = ast.StringTerm(key)
	}
	return [2]*ast.Term{k, ast.NewTerm(v)}
}

func intValue(n int64) ast.Value { return ast.Number(strconv.FormatInt(n, 10)) }

// floatValue renders f as encoding/json would, so that Value and the JSON
// document agree.
func floatValue(f float64) ast.Value {
	b, _ := json.Marshal(f) // a float from time arithmetic is never NaN or Inf
	return ast.Number(b)
}

// transportValue mirrors toolcall.Transport's JSON tags, omitempty included.
func transportValue(t *toolcall.Transport) ast.Value {
	kv := make([][2]*ast.Term, 0, 9)
	kv = append(kv, item("kind", ast.String(t.Kind)), item("protocol", ast.String(t.Protocol)))
	optional := func(key, v string) {
		if v != "" {
			kv = append(kv, item(key, ast.String(v)))
		}
	}
	optional("protocol_version", t.ProtocolVersion)
	optional("session_id", t.SessionID)
	optional("remote_addr", t.RemoteAddr)
	kv = append(kv, item("method", ast.String(t.Method)))
	optional("path", t.Path)
	if len(t.Headers) > 0 {
		h := make([][2]*ast.Term, 0, len(t.Headers))
		for k, v := range t.Headers {
			h = append(h, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
		}
		kv = append(kv, item("headers", ast.NewObject(h...)))
	}
	if len(t.Params) > 0 {
		p := make([][2]*ast.Term, 0, len(t.Params))
		for k, v := range t.Params {
			p = append(p, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
		}
		kv = append(kv, item("params", ast.NewObject(p...)))
	}
	if len(t.Query) > 0 {
		q := make([][2]*ast.Term, 0, len(t.Query))
		for k, vs := range t.Query {
			arr := make([]*ast.Term, len(vs))
			for i, v := range vs {
				arr[i] = ast.StringTerm(v)
			}
			q = append(q, [2]*ast.Term{ast.StringTerm(k), ast.ArrayTerm(arr...)})
		}
		kv = append(kv, item("query", ast.NewObject(q...)))
	}
	return ast.NewObject(kv...)
}

// clientValue mirrors toolcall.ClientInfo's JSON tags (both omitempty).
func clientValue(c toolcall.ClientInfo) ast.Value {
	kv := make([][2]*ast.Term, 0, 2)
	if c.Name != "" {
		kv = append(kv, item("name", ast.String(c.Name)))
	}
	if c.Version != "" {
		kv = append(kv, item("version", ast.String(c.Version)))
	}
	return ast.NewObject(kv...)
}

// jsonValue converts a JSON text to an AST value, keeping numbers exact.
// Empty text is {}.
func jsonValue(raw json.RawMessage) (ast.Value, error) {
	if isEmptyJSON(raw) {
		return ast.NewObject(), nil
	}
	v, err := parseJSONValue(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadArguments, err)
	}
	return v, nil
}
