// Package saga is the pure state machine at the heart of agenthelm: events
// in, state and the next actions out. It does no I/O: no journal, no
// network, no clock (time comes in with the events and as an argument).
//
// A saga is a sequence of tool-call steps that must all stand or all be
// undone. The driver (package engine) journals every event before acting
// on it, folds events into a Saga with Apply, and asks Plan what to do
// next while the saga unwinds: compensate step k, wait for a retry, mark
// a step as needing a human, or finish. The same events replayed after a
// crash give the same state, which is how recovery works.
//
// It imports nothing from agenthelm.
//
//	s := saga.New()
//	for _, ev := range events { s.Apply(ev) }
//	for _, act := range s.Plan(policy, now) { ... journal, then act ... }
package saga
