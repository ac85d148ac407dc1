// Package telemetry owns agenthelm's OpenTelemetry: the tracer and meter
// providers (OTLP over HTTP or gRPC, Prometheus on /metrics), the spans of
// tool calls, policy, approvals, journal commits and compensations, the
// metrics, and the redaction of secrets in whatever is exported.
//
// It is the only package that imports a semconv version (v1.41.0, the last
// with the gen_ai.* and mcp.* conventions). It imports toolcall, config and
// proxy/jsonrpc, and never the engine, the journal or the proxy.
//
//	p, err := telemetry.Setup(ctx, cfg.Telemetry, telemetry.Options{ServiceVersion: v, Redactor: r})
//	defer p.Shutdown(ctx)
//	proxy.New(proxy.Options{Interceptor: telemetry.ServerInterceptor(engine, p.Tracer())})
//	admin.Handle("/metrics", p.MetricsHandler())
//
// Spans: "tools/call {tool}" SERVER (each agent call) and CLIENT (each
// request upstream); "policy.evaluate", "approval.wait", "journal.commit",
// "capture", "saga.unwind" INTERNAL; "compensate {tool}" INTERNAL, linked
// to the span of the step it undoes. Every span of a saga carries
// agenthelm.saga.id and agenthelm.saga.step.
//
// Metrics (OpenTelemetry name, then Prometheus name):
//
//	mcp.server.operation.duration      mcp_server_operation_duration_seconds   histogram, s
//	mcp.client.operation.duration      mcp_client_operation_duration_seconds   histogram, s
//	agenthelm.tool.calls               agenthelm_tool_calls_total              counter (tool, upstream, outcome)
//	agenthelm.policy.decisions         agenthelm_policy_decisions_total        counter (result, tool, upstream)
//	agenthelm.approvals.pending        agenthelm_approvals_pending             up-down counter
//	agenthelm.approval.wait.duration   agenthelm_approval_wait_duration_seconds histogram, s (result)
//	agenthelm.sagas.finished           agenthelm_sagas_finished_total          counter (state)
//	agenthelm.sagas.stuck              agenthelm_sagas_stuck                   gauge
//	agenthelm.sagas.in_memory          agenthelm_sagas_in_memory               gauge (observed)
//	agenthelm.compensations            agenthelm_compensations_total           counter (outcome, tool, upstream)
//	agenthelm.compensation.retries     agenthelm_compensation_retries_total    counter (tool, upstream)
//	agenthelm.journal.commit.duration  agenthelm_journal_commit_duration_seconds histogram, s
//	agenthelm.journal.commit.records   agenthelm_journal_commit_records        histogram, records per commit
//
// docs/TELEMETRY.md has the attributes and the configuration.
package telemetry
