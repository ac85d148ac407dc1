package telemetry

import "context"

// SagaFromContext returns the saga id and step that WithSaga or
// StartCompensation put in ctx, and false outside a saga step. A front
// door's forward function uses it to tell the agent which saga its call
// joined (the HTTP tool proxy's X-AgentHelm-Saga response header).
func SagaFromContext(ctx context.Context) (id string, step int, ok bool) {
	si, ok := ctx.Value(sagaKey{}).(sagaInfo)
	return si.id, si.step, ok
}
