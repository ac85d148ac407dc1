// Package engine drives sagas: it is the toolcall.Interceptor that turns
// every tool call into a saga step, journals before it acts, and unwinds
// failed sagas by running compensations in reverse order.
//
// The decisions are made by the pure state machine in package saga; this
// package does the I/O around it, in the order the correctness rules
// demand: journal the intent durably, then forward; journal the outcome
// durably, then answer; journal each compensation attempt before sending it
// and its outcome after. It recovers unfinished sagas at start-up, before
// traffic, and retries failed compensations on their persisted schedule.
//
// It depends on small interfaces it declares (Journal, Invoker, Rules) and
// never on the proxy or the journal's concrete types beyond their records.
//
//	e := engine.New(engine.Options{Journal: j, Invoker: p, Rules: rules})
//	if err := e.Recover(ctx); err != nil { ... }   // before serving
//	proxy.New(proxy.Options{Interceptor: e, ...})
package engine
