package telemetry

import (
	"go.opentelemetry.io/otel/attribute"

	// The gen_ai.* and mcp.* conventions live in v1.39.0-v1.41.0 only; this
	// file and the ones beside it are the only importers of a semconv
	// version in agenthelm.
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// schemaURL is the semantic-convention version of every span and metric
// this package emits.
const schemaURL = semconv.SchemaURL

// serviceName is the service.name resource attribute.
const serviceName = "agenthelm"

// Attributes agenthelm adds where the semantic conventions have none. They
// are defined here and nowhere else.
const (
	// SagaIDKey is the saga a span or data point belongs to (string).
	SagaIDKey = attribute.Key("agenthelm.saga.id")
	// SagaStepKey is the 1-based step number within the saga (int).
	SagaStepKey = attribute.Key("agenthelm.saga.step")
	// SagaStateKey is a saga's final state: committed, compensated,
	// needs_human, ... (metric attribute).
	SagaStateKey = attribute.Key("agenthelm.saga.state")
	// UpstreamKey is the configured name of the upstream server a call
	// goes to.
	UpstreamKey = attribute.Key("agenthelm.upstream")
	// OutcomeKey is how an agent's tool call ended (see Outcome).
	OutcomeKey = attribute.Key("agenthelm.outcome")
	// PolicyResultKey is a policy decision: allow, deny or require_approval.
	PolicyResultKey = attribute.Key("agenthelm.policy.result")
	// ApprovalResultKey is how a held call was resolved: approved, denied
	// or expired.
	ApprovalResultKey = attribute.Key("agenthelm.approval.result")
	// CompensationOutcomeKey is how a compensation attempt ended: ok,
	// failed, needs_human, irreversible or skipped.
	CompensationOutcomeKey = attribute.Key("agenthelm.compensation.outcome")
	// CompensationAttemptKey is the 1-based attempt number of a
	// compensation (int).
	CompensationAttemptKey = attribute.Key("agenthelm.compensation.attempt")
)

// Semantic-convention attributes and values used here, from semconv v1.41.0.
var (
	keyMCPProtocol      = semconv.McpProtocolVersionKey
	keyMCPSession       = semconv.McpSessionIDKey
	keyToolName         = semconv.GenAIToolNameKey
	keyToolArgs         = semconv.GenAIToolCallArgumentsKey
	keyToolResult       = semconv.GenAIToolCallResultKey
	keyRequestID        = semconv.JSONRPCRequestIDKey
	keyRPCStatus        = semconv.RPCResponseStatusCodeKey
	keyErrorType        = semconv.ErrorTypeKey
	keyNetProtocol      = semconv.NetworkProtocolNameKey
	keyClientAddress    = semconv.ClientAddressKey
	keyClientPort       = semconv.ClientPortKey
	keyHTTPMethod       = semconv.HTTPRequestMethodKey
	keyURLPath          = semconv.URLPathKey
	attrToolsCall       = semconv.McpMethodNameToolsCall
	attrExecuteTool     = semconv.GenAIOperationNameExecuteTool
	attrTransportTCP    = semconv.NetworkTransportTCP
	attrTransportPipe   = semconv.NetworkTransportPipe
	attrServiceName     = semconv.ServiceName(serviceName)
	serviceVersionAttr  = semconv.ServiceVersion
	serviceInstanceAttr = semconv.ServiceInstanceID
)

// errorTypeToolError is error.type for a tools/call result with isError:
// true (MCP semantic conventions).
const errorTypeToolError = "tool_error"

// Span names. Tool calls are named "{mcp.method.name} {tool}" by the MCP
// conventions; agenthelm's own work uses these.
const (
	// SpanPolicyEvaluate covers one policy evaluation.
	SpanPolicyEvaluate = "policy.evaluate"
	// SpanApprovalWait covers the time a call is held for a human.
	SpanApprovalWait = "approval.wait"
	// SpanJournalCommit covers one durable journal write.
	SpanJournalCommit = "journal.commit"
	// SpanCapture covers a pre-image capture before a step.
	SpanCapture = "capture"
	// SpanUnwind covers unwinding a saga (its compensations are children).
	SpanUnwind = "saga.unwind"
	// spanCompensatePrefix + tool names a compensation span.
	spanCompensatePrefix = "compensate "
	// spanToolsCallPrefix + tool names a tool call span, SERVER or CLIENT.
	spanToolsCallPrefix = "tools/call "
)

// SagaAttributes returns the saga id and step attributes; step 0 leaves
// the step out.
func SagaAttributes(sagaID string, step int) []attribute.KeyValue {
	if step <= 0 {
		return []attribute.KeyValue{SagaIDKey.String(sagaID)}
	}
	return []attribute.KeyValue{SagaIDKey.String(sagaID), SagaStepKey.Int(step)}
}
