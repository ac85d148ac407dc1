package saga

import (
	"encoding/json"
	"time"
)

// Status is where a saga stands.
type Status string

// Saga statuses. Committed and Compensated are terminal. NeedsHuman and
// Stuck are resting states: unwinding stopped and waits for an operator
// (resolve a step, retry). An operator may also roll back a committed saga,
// which makes it Aborting again.
const (
	Open        Status = "open"
	Aborting    Status = "aborting"
	Committed   Status = "committed"
	Compensated Status = "compensated"
	NeedsHuman  Status = "needs_human"
	Stuck       Status = "stuck"
)

// Terminal reports whether nothing more happens to a saga on its own.
func (s Status) Terminal() bool { return s == Committed || s == Compensated }

// StepStatus is the outcome of a step's forward call.
type StepStatus string

// Step outcomes (CORRECTNESS rule 2), plus the states before and besides.
const (
	// InFlight: the intent is journaled and the call may have been sent;
	// no outcome yet. After a crash this becomes InDoubt.
	InFlight StepStatus = "in_flight"
	// NotSent: the call provably never reached the upstream (for example
	// the connection was refused). Never compensated.
	NotSent       StepStatus = "not_sent"
	Succeeded     StepStatus = "succeeded"
	ToolError     StepStatus = "tool_error"
	ProtocolError StepStatus = "protocol_error"
	HTTPStatus    StepStatus = "http_status"
	Timeout       StepStatus = "timeout"
	Cancelled     StepStatus = "cancelled"
	// InDoubt: it may or may not have run (crash, broken stream).
	InDoubt StepStatus = "in_doubt"
	// Denied: refused by policy or approval, never forwarded.
	Denied StepStatus = "denied"
	// InputRequired: the upstream answered resultType "input_required"
	// (MCP 2026-07-28): it needs input from the agent's client before it
	// does the work, which comes back as a new call (a new step). Never
	// compensated.
	InputRequired StepStatus = "input_required"
)

// mayHaveRun reports whether a step's effects may exist without the proxy
// knowing its result: timeouts, cancellations and crashes (rule 6).
func (s StepStatus) mayHaveRun() bool {
	return s == InFlight || s == InDoubt || s == Timeout || s == Cancelled
}

// CompStatus is where a step's compensation stands.
type CompStatus string

// Compensation states.
const (
	CompNone         CompStatus = ""
	CompRunning      CompStatus = "running"
	CompDone         CompStatus = "compensated"
	CompFailed       CompStatus = "failed"
	CompNeedsHuman   CompStatus = "needs_human"
	CompIrreversible CompStatus = "irreversible"
	// CompResolved: an operator dealt with the step by hand.
	CompResolved CompStatus = "resolved"
	// CompSkipped: given up on with continue_past_failure.
	CompSkipped CompStatus = "skipped"
)

// Compensator is the action that undoes a step, as journaled with the
// step's intent: a tool on an upstream and a jq expression that builds its
// arguments from {args, result, capture}.
type Compensator struct {
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	Args     string `json:"args"`
	// NeedsResult: an expression reads .result, so the compensation cannot
	// be built for a step whose result is unknown (rule 11).
	NeedsResult bool `json:"needs_result,omitempty"`
	// Then are further calls on the same upstream, run in order after the
	// first one succeeded, for undos that take more than one call (for
	// example re-creating entities, then their relations). Each has its own
	// idempotency key, so a retried compensation does not repeat the ones
	// that already ran.
	Then []Call `json:"then,omitempty"`
}

// Call is one further call of a compensation.
type Call struct {
	Tool string `json:"tool"`
	Args string `json:"args"`
}

// Intent is what is journaled before a step's call is forwarded (rule 1).
type Intent struct {
	Upstream       string          `json:"upstream"`
	Tool           string          `json:"tool"`
	Args           json.RawMessage `json:"args,omitempty"`
	ArgsDigest     string          `json:"args_digest"`
	IdempotencyKey string          `json:"idempotency_key"`
	DecisionID     string          `json:"decision_id,omitempty"`
	ReadOnly       bool            `json:"read_only,omitempty"`
	Irreversible   bool            `json:"irreversible,omitempty"`
	// ErrorsMayLeaveEffects: a tool error result is compensated too (rule 10).
	ErrorsMayLeaveEffects bool            `json:"errors_may_leave_effects,omitempty"`
	Compensator           *Compensator    `json:"compensator,omitempty"`
	Capture               json.RawMessage `json:"capture,omitempty"`
	// Session is the agent session the call came on (to reach the same
	// upstream connection while it lives).
	Session string `json:"session,omitempty"`
	// Traceparent is the W3C trace context of the call's span, so that the
	// spans of its compensation link to it, even after a restart.
	Traceparent string `json:"traceparent,omitempty"`
	// Launch records how the upstream was reached, so that recovery can
	// reach it even if the configuration no longer names it (rule 29).
	Launch *Launch `json:"launch,omitempty"`
}

// Launch is how to reach an upstream: a stdio command (with the names, never
// the values, of the environment variables it needs: values are re-read at
// recovery) or a URL.
type Launch struct {
	Transport string   `json:"transport"`
	Command   []string `json:"command,omitempty"`
	Dir       string   `json:"dir,omitempty"`
	EnvNames  []string `json:"env_names,omitempty"`
	URL       string   `json:"url,omitempty"`
}

// Comp is a step's compensation state.
type Comp struct {
	Status      CompStatus      `json:"status,omitempty"`
	Attempts    int             `json:"attempts,omitempty"`
	LastError   string          `json:"last_error,omitempty"`
	NextAttempt time.Time       `json:"next_attempt,omitzero"`
	Result      json.RawMessage `json:"result,omitempty"`
}

// Step is one tool call of a saga.
type Step struct {
	N int `json:"n"`
	Intent
	Status   StepStatus      `json:"status"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished,omitzero"`
	Comp     Comp            `json:"comp"`
}

// Saga is the state folded from a saga's events.
type Saga struct {
	ID          string    `json:"id"`
	Scope       string    `json:"scope"`
	Status      Status    `json:"status"`
	Steps       []*Step   `json:"steps"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	AbortReason string    `json:"abort_reason,omitempty"`
	// AbortStep is the step whose failure started the unwinding (0 if an
	// operator or the agent asked for it).
	AbortStep int `json:"abort_step,omitempty"`
}

// Step returns step n (1-based), or nil.
func (s *Saga) Step(n int) *Step {
	if n < 1 || n > len(s.Steps) {
		return nil
	}
	return s.Steps[n-1]
}

// InFlight reports how many steps have an intent and no outcome.
func (s *Saga) InFlight() int {
	n := 0
	for _, st := range s.Steps {
		if st.Status == InFlight {
			n++
		}
	}
	return n
}

// NextAttempt is the earliest scheduled compensation retry, or zero.
func (s *Saga) NextAttempt() time.Time {
	var t time.Time
	if s.Status != Aborting {
		return t
	}
	for _, st := range s.Steps {
		if st.Comp.Status == CompFailed && !st.Comp.NextAttempt.IsZero() && (t.IsZero() || st.Comp.NextAttempt.Before(t)) {
			t = st.Comp.NextAttempt
		}
	}
	return t
}

// needsCompensation reports whether a step's effects must be undone when
// its saga unwinds (rule 10): it succeeded or may have run; a tool error
// only where the tool is configured as leaving effects on error.
func (st *Step) needsCompensation() bool {
	if st.ReadOnly {
		return false
	}
	switch {
	case st.Status == Succeeded, st.Status.mayHaveRun():
		return true
	case st.Status == ToolError, st.Status == HTTPStatus:
		return st.ErrorsMayLeaveEffects
	}
	return false
}
