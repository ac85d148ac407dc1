// Package approvals holds tool calls that a policy sent for human approval
// until a person approves or denies them, or they expire (expiry denies).
//
// A Broker keeps the pending requests of this process. The saga engine
// opens a request (Open), asks the agent's client too where it can, and
// waits (Wait; Hold is both) while the agent's call is held; people decide through the CLI,
// the admin API or the web page (all of which call Decide), and a
// Notifier tells them (a webhook). The first decision wins; a decision is
// single-use and bound to the request, which is bound to one saga, step
// and argument digest. The engine journals the request and the decision;
// this package does no journaling.
//
//	b := approvals.New(approvals.Options{Notifier: hook})
//	d, err := b.Hold(ctx, req, keepAlive)   // or Open, then Wait
//	b.Decide(id, true, "alice", "looks fine") // from the admin API
package approvals
