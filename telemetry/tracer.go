package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// instrumentationName is the instrumentation scope of every span and
// instrument.
const instrumentationName = "github.com/agenthelm/agenthelm/telemetry"

// maxAttrBytes bounds a captured argument or result attribute.
const maxAttrBytes = 16 << 10

// TracerOptions configure NewTracer.
type TracerOptions struct {
	// Metrics receives the call metrics. Nil records none.
	Metrics *Metrics
	// Redactor masks captured arguments, results and error messages. Nil
	// means DefaultRedactor.
	Redactor *Redactor
	// CaptureArguments records gen_ai.tool.call.arguments and
	// gen_ai.tool.call.result on tool call spans, after redaction. False:
	// never.
	CaptureArguments bool
}

// Tracer starts agenthelm's spans and records the call metrics. A nil
// *Tracer is valid: it starts no spans and records nothing, so the engine
// can hold one unconditionally. It is safe for concurrent use.
type Tracer struct {
	tracer   trace.Tracer
	tracing  bool // false: a no-op provider, skip all span work
	metrics  *Metrics
	redactor *Redactor
	capture  bool
}

// NewTracer returns a Tracer on tp (nil or a no-op provider: no spans).
// Setup builds one; tests and embedders may build their own.
func NewTracer(tp trace.TracerProvider, opts TracerOptions) *Tracer {
	t := &Tracer{metrics: opts.Metrics, redactor: opts.Redactor, capture: opts.CaptureArguments}
	if t.redactor == nil {
		t.redactor = DefaultRedactor()
	}
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		t.tracer = noop.NewTracerProvider().Tracer(instrumentationName)
	default:
		t.tracer = tp.Tracer(instrumentationName, trace.WithSchemaURL(schemaURL))
		t.tracing = true
	}
	return t
}

// Metrics returns the tracer's metrics (nil if none).
func (t *Tracer) Metrics() *Metrics {
	if t == nil {
		return nil
	}
	return t.metrics
}

// Redactor returns the redactor the tracer masks captured values with.
func (t *Tracer) Redactor() *Redactor {
	if t == nil {
		return nil
	}
	return t.redactor
}

// Context keys.
type (
	sagaKey      struct{}
	clientKey    struct{}
	callStateKey struct{}
)

type sagaInfo struct {
	id   string
	step int
}

// clientCall is what StartClient leaves in the context for EndClient.
type clientCall struct {
	start          time.Time
	upstream, tool string
}

// callState is shared between ServerInterceptor and the code it wraps.
type callState struct {
	outcome atomic.Value // Outcome
}

// WithSaga returns ctx carrying the saga id and step, so that every span
// started from it (StartClient, StartInternal) carries agenthelm.saga.id
// and agenthelm.saga.step; it also sets them on the span already in ctx
// (the tool call's SERVER span when called from the engine). Call it again
// if the step number changes. step 0 means no step yet.
func WithSaga(ctx context.Context, sagaID string, step int) context.Context {
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(SagaAttributes(sagaID, step)...)
	}
	return context.WithValue(ctx, sagaKey{}, sagaInfo{id: sagaID, step: step})
}

// SetOutcome refines the agenthelm.outcome attribute that ServerInterceptor
// records for the call ctx belongs to (for example OutcomeDenied for a call
// the policy refused, which otherwise counts as tool_error). It does
// nothing outside a call.
func SetOutcome(ctx context.Context, o Outcome) {
	if st, ok := ctx.Value(callStateKey{}).(*callState); ok {
		st.outcome.Store(o)
	}
}

func appendSaga(ctx context.Context, attrs []attribute.KeyValue) []attribute.KeyValue {
	if si, ok := ctx.Value(sagaKey{}).(sagaInfo); ok {
		attrs = append(attrs, SagaAttributes(si.id, si.step)...)
	}
	return attrs
}

var noopSpan trace.Span = noop.Span{}

// StartClient starts the CLIENT span "tools/call {tool}" of a request
// agenthelm sends to upstream (a forwarded call, a capture, a
// compensation), child of the span in ctx. Pass the returned context to
// InjectMeta and the send, and end the span with EndClient, which also
// records mcp.client.operation.duration.
func (t *Tracer) StartClient(ctx context.Context, upstream, tool string) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noopSpan
	}
	ctx = context.WithValue(ctx, clientKey{}, clientCall{start: time.Now(), upstream: upstream, tool: tool})
	if !t.tracing {
		return ctx, noopSpan
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, attrToolsCall, keyToolName.String(tool), attrExecuteTool, UpstreamKey.String(upstream))
	attrs = appendSaga(ctx, attrs)
	return t.tracer.Start(ctx, spanToolsCallPrefix+tool, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// EndClient ends a span from StartClient with the request's result: it sets
// error.type (and rpc.response.status_code for a JSON-RPC error), the
// status, and the captured result when enabled, and records
// mcp.client.operation.duration.
func (t *Tracer) EndClient(ctx context.Context, span trace.Span, res toolcall.Result, err error) {
	if t == nil {
		span.End()
		return
	}
	errType, code := classify(res, err)
	if span.IsRecording() {
		t.setError(span, errType, code, res, err)
		if t.capture && res.Result != nil {
			span.SetAttributes(keyToolResult.String(t.attrJSON("result", res.Result)))
		}
	}
	span.End()
	if cc, ok := ctx.Value(clientKey{}).(clientCall); ok {
		t.metrics.ClientOperation(ctx, cc.upstream, cc.tool, time.Since(cc.start), errType, code)
	}
}

// WrapForward returns forward wrapped in a CLIENT span: each call starts
// the span, writes its trace context into params._meta (InjectMeta), sends,
// and ends the span with the result. The engine wraps the Forward it is
// given, and its Invoker calls the same way:
//
//	res, err := tracer.WrapForward(call.Upstream, call.Tool, forward)(ctx, params)
//
// A nil Tracer returns forward unchanged.
func (t *Tracer) WrapForward(upstream, tool string, forward toolcall.Forward) toolcall.Forward {
	if t == nil {
		return forward
	}
	return func(ctx context.Context, params json.RawMessage) (toolcall.Result, error) {
		ctx, span := t.StartClient(ctx, upstream, tool)
		res, err := forward(ctx, InjectMeta(ctx, params))
		t.EndClient(ctx, span, res, err)
		return res, err
	}
}

// StartInternal starts an INTERNAL span, child of the span in ctx, for
// agenthelm's own work: SpanPolicyEvaluate, SpanApprovalWait,
// SpanJournalCommit, SpanCapture, SpanUnwind. It carries the saga id and
// step set by WithSaga, then attrs. End it with End.
func (t *Tracer) StartInternal(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil || !t.tracing {
		return ctx, noopSpan
	}
	all := appendSaga(ctx, make([]attribute.KeyValue, 0, len(attrs)+2))
	all = append(all, attrs...)
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(all...))
}

// StartCompensation starts the INTERNAL span "compensate {tool}" of one
// compensation attempt of step `step` of saga sagaID, whose tool was tool.
// The span links to link, the span of the step it undoes (rule 26; see
// Traceparent and SpanContextFromTraceparent to keep it across restarts);
// an invalid link is left out. Its parent is the span in ctx, if any (the
// failing call's span when unwinding inline; none for a retry or
// recovery). The returned context carries the saga and step, so the
// compensating calls' CLIENT spans (StartClient, WrapForward) carry them
// too. attrs may add e.g. CompensationAttemptKey. End it with End.
func (t *Tracer) StartCompensation(ctx context.Context, sagaID string, step int, tool string, link trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx = context.WithValue(ctx, sagaKey{}, sagaInfo{id: sagaID, step: step})
	if t == nil || !t.tracing {
		return ctx, noopSpan
	}
	all := make([]attribute.KeyValue, 0, len(attrs)+3)
	all = append(all, SagaAttributes(sagaID, step)...)
	all = append(all, keyToolName.String(tool))
	all = append(all, attrs...)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(all...)}
	if link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	return t.tracer.Start(ctx, spanCompensatePrefix+tool, opts...)
}

// End ends a span from StartInternal or StartCompensation. A non-nil err
// sets error.type (see classify) and the status ERROR with the error's
// message, redacted.
func (t *Tracer) End(span trace.Span, err error) {
	if err != nil && span.IsRecording() && t != nil {
		errType, code := classify(toolcall.Result{}, err)
		t.setError(span, errType, code, toolcall.Result{}, err)
	}
	span.End()
}

// setError records error.type and the status on a recording span.
func (t *Tracer) setError(span trace.Span, errType, code string, res toolcall.Result, err error) {
	if errType == "" {
		return
	}
	span.SetAttributes(keyErrorType.String(errType))
	if code != "" {
		span.SetAttributes(keyRPCStatus.String(code))
	}
	var msg string
	switch {
	case err != nil:
		msg = err.Error()
	case res.Error != nil:
		msg = res.Error.Message
	default:
		msg = errType
	}
	span.SetStatus(codes.Error, t.redactor.String(msg))
}

// attrJSON is a captured JSON value as a span attribute: redacted as
// member of the call document, and cut to maxAttrBytes.
func (t *Tracer) attrJSON(member string, raw []byte) string {
	s := string(t.redactor.Member(member, raw))
	if len(s) <= maxAttrBytes {
		return s
	}
	cut := maxAttrBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...(truncated)"
}

// classify returns the error.type of a request's outcome ("" for success)
// and, for a JSON-RPC error, its code as a string (rpc.response.status_code):
//   - a JSON-RPC error response, or a *jsonrpc.Error returned as an error:
//     its code, e.g. "-32602";
//   - a result with isError: true: "tool_error";
//   - toolcall.ErrTimeout or context.DeadlineExceeded: "timeout";
//     context.Canceled: "cancelled"; toolcall.ErrNotSent: "not_sent";
//   - any other error: its Go type (semconv.ErrorType), e.g. "*net.OpError".
func classify(res toolcall.Result, err error) (errType, code string) {
	var rpcErr *jsonrpc.Error
	switch {
	case err == nil && res.Error != nil:
		c := strconv.Itoa(res.Error.Code)
		return c, c
	case err == nil && isToolError(res):
		return errorTypeToolError, ""
	case err == nil:
		return "", ""
	case errors.As(err, &rpcErr):
		c := strconv.Itoa(rpcErr.Code)
		return c, c
	case errors.Is(err, toolcall.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout", ""
	case errors.Is(err, context.Canceled):
		return "cancelled", ""
	case errors.Is(err, toolcall.ErrNotSent):
		return "not_sent", ""
	}
	return semconv.ErrorType(err).Value.AsString(), ""
}

// isToolError is toolcall.Result.IsToolError without decoding the result:
// it reads the top-level isError member with the scanner, and falls back
// to IsToolError when the member appears twice or in another case.
func isToolError(res toolcall.Result) bool {
	if res.Error != nil {
		return false
	}
	v, found, ambiguous := objectMember(res.Result, "isError")
	switch {
	case ambiguous:
		return res.IsToolError()
	case !found:
		return false
	}
	return string(v) == "true"
}

// outcomeOf derives a call's outcome from its error.type.
func outcomeOf(errType string, res toolcall.Result, err error) Outcome {
	switch {
	case errType == "":
		return OutcomeOK
	case errType == errorTypeToolError:
		return OutcomeToolError
	case err == nil && res.Error != nil:
		return OutcomeRPCError
	}
	return OutcomeError
}
