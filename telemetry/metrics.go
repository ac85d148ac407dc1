package telemetry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/semconv/v1.41.0/mcpconv"
)

// Instrument names. The two MCP histograms are the semantic conventions'
// (semconv v1.41.0 mcpconv); the others are agenthelm's. In Prometheus the
// dots become underscores, seconds get _seconds and counters _total
// (agenthelm.tool.calls is agenthelm_tool_calls_total).
const (
	MetricServerDuration        = "mcp.server.operation.duration"     // s, histogram
	MetricClientDuration        = "mcp.client.operation.duration"     // s, histogram
	MetricToolCalls             = "agenthelm.tool.calls"              // {call}, counter
	MetricPolicyDecisions       = "agenthelm.policy.decisions"        // {decision}, counter
	MetricApprovalsPending      = "agenthelm.approvals.pending"       // {approval}, up-down counter
	MetricApprovalWait          = "agenthelm.approval.wait.duration"  // s, histogram
	MetricSagasFinished         = "agenthelm.sagas.finished"          // {saga}, counter
	MetricSagasStuck            = "agenthelm.sagas.stuck"             // {saga}, gauge
	MetricSagasInMemory         = "agenthelm.sagas.in_memory"         // {saga}, gauge
	MetricCompensations         = "agenthelm.compensations"           // {compensation}, counter
	MetricCompensationRetries   = "agenthelm.compensation.retries"    // {retry}, counter
	MetricJournalCommitDuration = "agenthelm.journal.commit.duration" // s, histogram
	MetricJournalCommitRecords  = "agenthelm.journal.commit.records"  // {record}, histogram
)

// Bucket boundaries. The MCP ones are the semantic conventions' advice.
var (
	callBuckets    = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}
	approvalBucket = []float64{1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200}
	commitBuckets  = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	batchBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
)

// Outcome is how an agent's tool call ended, the agenthelm.outcome
// attribute of agenthelm.tool.calls. The interceptor derives ok,
// tool_error, rpc_error and error from the result; the engine may refine
// it with SetOutcome.
type Outcome string

// Outcomes of a tool call.
const (
	OutcomeOK        Outcome = "ok"          // forwarded, answered without error
	OutcomeToolError Outcome = "tool_error"  // the result has isError: true
	OutcomeRPCError  Outcome = "rpc_error"   // a JSON-RPC error came back
	OutcomeError     Outcome = "error"       // the call failed in agenthelm or on the way
	OutcomeDenied    Outcome = "denied"      // the policy (or a human) said no
	OutcomeRefused   Outcome = "refused"     // agenthelm refused it (saga not open, journal down)
	OutcomeUnwound   Outcome = "rolled_back" // the call failed and its saga was unwound
	// OutcomeInputRequired: held for approval, answered input_required so
	// that a 2026-07-28 client asks its user and retries.
	OutcomeInputRequired Outcome = "input_required"
)

// Metrics records agenthelm's instruments. A nil *Metrics records nothing,
// so code may hold one unconditionally. It is safe for concurrent use.
type Metrics struct {
	meter          metric.Meter
	server         mcpconv.ServerOperationDuration
	client         mcpconv.ClientOperationDuration
	calls          metric.Int64Counter
	decisions      metric.Int64Counter
	pending        metric.Int64UpDownCounter
	approvalWait   metric.Float64Histogram
	sagas          metric.Int64Counter
	stuck          metric.Int64Gauge
	compensations  metric.Int64Counter
	retries        metric.Int64Counter
	commitDuration metric.Float64Histogram
	commitRecords  metric.Int64Histogram

	serverSets setCache[serverKey, serverSets]
	clientSets setCache[clientSetKey, attribute.Set]
}

// NewMetrics creates the instruments on a meter of mp.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	m := mp.Meter(instrumentationName, metric.WithSchemaURL(schemaURL))
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	out := &Metrics{meter: m}
	out.server, err = mcpconv.NewServerOperationDuration(m, metric.WithExplicitBucketBoundaries(callBuckets...))
	check(err)
	out.client, err = mcpconv.NewClientOperationDuration(m, metric.WithExplicitBucketBoundaries(callBuckets...))
	check(err)
	out.calls, err = m.Int64Counter(MetricToolCalls, metric.WithUnit("{call}"),
		metric.WithDescription("Tool calls made by agents, by tool, upstream and outcome."))
	check(err)
	out.decisions, err = m.Int64Counter(MetricPolicyDecisions, metric.WithUnit("{decision}"),
		metric.WithDescription("Policy decisions, by result (allow, deny, require_approval)."))
	check(err)
	out.pending, err = m.Int64UpDownCounter(MetricApprovalsPending, metric.WithUnit("{approval}"),
		metric.WithDescription("Calls currently held for human approval."))
	check(err)
	out.approvalWait, err = m.Float64Histogram(MetricApprovalWait, metric.WithUnit("s"),
		metric.WithDescription("Time a call was held for approval, by result (approved, denied, expired)."),
		metric.WithExplicitBucketBoundaries(approvalBucket...))
	check(err)
	out.sagas, err = m.Int64Counter(MetricSagasFinished, metric.WithUnit("{saga}"),
		metric.WithDescription("Sagas that reached a final state, by state."))
	check(err)
	out.stuck, err = m.Int64Gauge(MetricSagasStuck, metric.WithUnit("{saga}"),
		metric.WithDescription("Sagas whose compensation keeps failing and that wait for an operator."))
	check(err)
	out.compensations, err = m.Int64Counter(MetricCompensations, metric.WithUnit("{compensation}"),
		metric.WithDescription("Compensation attempts and verdicts, by outcome (ok, failed, needs_human, irreversible, skipped)."))
	check(err)
	out.retries, err = m.Int64Counter(MetricCompensationRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("Compensation attempts after the first."))
	check(err)
	out.commitDuration, err = m.Float64Histogram(MetricJournalCommitDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of a journal group commit, fsync included."),
		metric.WithExplicitBucketBoundaries(commitBuckets...))
	check(err)
	out.commitRecords, err = m.Int64Histogram(MetricJournalCommitRecords, metric.WithUnit("{record}"),
		metric.WithDescription("Appends acknowledged by one journal group commit."),
		metric.WithExplicitBucketBoundaries(batchBuckets...))
	check(err)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Gauges that read 0 until something happens, rather than absent.
	out.pending.Add(context.Background(), 0)
	out.stuck.Record(context.Background(), 0)
	return out, nil
}

// serverOperation records mcp.server.operation.duration and
// agenthelm.tool.calls for one agent call.
func (m *Metrics) serverOperation(ctx context.Context, c callLabels, d time.Duration, outcome Outcome) {
	if m == nil {
		return
	}
	k := serverKey{tool: c.tool, upstream: c.upstream, transport: c.transport.Value.AsString(),
		version: c.protocolVersion, errType: c.errorType, code: c.rpcCode, outcome: outcome}
	sets := m.serverSets.get(k, func() serverSets {
		attrs := make([]attribute.KeyValue, 0, 9)
		attrs = append(attrs, attrToolsCall, keyToolName.String(c.tool), attrExecuteTool, UpstreamKey.String(c.upstream))
		if c.transport.Valid() {
			attrs = append(attrs, c.transport)
		}
		if c.protocolVersion != "" {
			attrs = append(attrs, keyMCPProtocol.String(c.protocolVersion))
		}
		if c.errorType != "" {
			attrs = append(attrs, keyErrorType.String(c.errorType))
		}
		if c.rpcCode != "" {
			attrs = append(attrs, keyRPCStatus.String(c.rpcCode))
		}
		return serverSets{
			duration: attribute.NewSet(attrs...),
			calls:    attribute.NewSet(keyToolName.String(c.tool), UpstreamKey.String(c.upstream), OutcomeKey.String(string(outcome))),
		}
	})
	m.server.RecordSet(ctx, d.Seconds(), sets.duration)
	m.calls.Add(ctx, 1, metric.WithAttributeSet(sets.calls))
}

// ClientOperation records mcp.client.operation.duration for one request
// agenthelm sent upstream. errorType is "" for success, else the
// error.type value; rpcCode is the JSON-RPC error code, if any. EndClient
// calls it.
func (m *Metrics) ClientOperation(ctx context.Context, upstream, tool string, d time.Duration, errorType, rpcCode string) {
	if m == nil {
		return
	}
	k := clientSetKey{tool: tool, upstream: upstream, errType: errorType, code: rpcCode}
	set := m.clientSets.get(k, func() attribute.Set {
		attrs := make([]attribute.KeyValue, 0, 6)
		attrs = append(attrs, attrToolsCall, keyToolName.String(tool), attrExecuteTool, UpstreamKey.String(upstream))
		if errorType != "" {
			attrs = append(attrs, keyErrorType.String(errorType))
		}
		if rpcCode != "" {
			attrs = append(attrs, keyRPCStatus.String(rpcCode))
		}
		return attribute.NewSet(attrs...)
	})
	m.client.RecordSet(ctx, d.Seconds(), set)
}

// Attribute sets of the per-call instruments are built once per
// combination and cached, up to maxCachedSets each; beyond that (a flood
// of made-up tool names) they are built per call.
const maxCachedSets = 4096

type serverKey struct {
	tool, upstream, transport, version, errType, code string
	outcome                                           Outcome
}

type serverSets struct{ duration, calls attribute.Set }

type clientSetKey struct{ tool, upstream, errType, code string }

type setCache[K comparable, V any] struct {
	m sync.Map // K -> V
	n atomic.Int64
}

func (c *setCache[K, V]) get(k K, build func() V) V {
	if v, ok := c.m.Load(k); ok {
		return v.(V)
	}
	v := build()
	if c.n.Load() < maxCachedSets {
		if _, loaded := c.m.LoadOrStore(k, v); !loaded {
			c.n.Add(1)
		}
	}
	return v
}

// PolicyDecision counts one policy decision. result is allow, deny or
// require_approval.
func (m *Metrics) PolicyDecision(ctx context.Context, upstream, tool, result string) {
	if m == nil {
		return
	}
	m.decisions.Add(ctx, 1, metric.WithAttributes(
		PolicyResultKey.String(result), keyToolName.String(tool), UpstreamKey.String(upstream)))
}

// ApprovalHeld counts a call that starts waiting for approval (including
// one found pending by recovery after a restart).
func (m *Metrics) ApprovalHeld(ctx context.Context) {
	if m == nil {
		return
	}
	m.pending.Add(ctx, 1)
}

// ApprovalResolved ends a wait counted by ApprovalHeld. result is
// approved, denied or expired; wait is how long the call was held.
func (m *Metrics) ApprovalResolved(ctx context.Context, result string, wait time.Duration) {
	if m == nil {
		return
	}
	m.pending.Add(ctx, -1)
	m.approvalWait.Record(ctx, wait.Seconds(), metric.WithAttributes(ApprovalResultKey.String(result)))
}

// SagaFinished counts a saga that reached a final state (committed,
// compensated, needs_human, ...).
func (m *Metrics) SagaFinished(ctx context.Context, state string) {
	if m == nil {
		return
	}
	m.sagas.Add(ctx, 1, metric.WithAttributes(SagaStateKey.String(state)))
}

// ObserveSagasInMemory reports agenthelm.sagas.in_memory, read from count
// at each collection: the sagas the engine holds in memory. It should
// follow the open sagas; growing with every saga run would be a leak.
func (m *Metrics) ObserveSagasInMemory(count func() int) error {
	if m == nil {
		return nil
	}
	_, err := m.meter.Int64ObservableGauge(MetricSagasInMemory, metric.WithUnit("{saga}"),
		metric.WithDescription("Sagas held in memory: open or unwinding ones, ones in use, and up to 256 ended ones kept for redacted values their undo needs."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(count()))
			return nil
		}))
	return err
}

// SetStuckSagas sets the number of stuck sagas. Call it whenever the
// number may have changed (a saga became stuck, an operator resolved or
// retried one) and after recovery.
func (m *Metrics) SetStuckSagas(ctx context.Context, n int) {
	if m == nil {
		return
	}
	m.stuck.Record(ctx, int64(n))
}

// CompensationFinished counts one compensation attempt or verdict of the
// step of upstream/tool (the tool being undone). outcome is ok, failed,
// needs_human, irreversible or skipped; an attempt above 1 also counts as
// a retry.
func (m *Metrics) CompensationFinished(ctx context.Context, upstream, tool, outcome string, attempt int) {
	if m == nil {
		return
	}
	m.compensations.Add(ctx, 1, metric.WithAttributes(
		CompensationOutcomeKey.String(outcome), keyToolName.String(tool), UpstreamKey.String(upstream)))
	if attempt > 1 {
		m.retries.Add(ctx, 1, metric.WithAttributes(keyToolName.String(tool), UpstreamKey.String(upstream)))
	}
}

// JournalCommit records one journal group commit. Its signature is that of
// journal.Options.OnCommit, so it can be passed as is; it returns at once.
func (m *Metrics) JournalCommit(records int, d time.Duration) {
	if m == nil {
		return
	}
	ctx := context.Background()
	m.commitDuration.Record(ctx, d.Seconds())
	m.commitRecords.Record(ctx, int64(records))
}
