package saga

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// EventKind names an event. The names are part of the journal format:
// never rename one; add new kinds instead.
type EventKind string

// Event kinds.
const (
	// EvOpened starts a saga.
	EvOpened EventKind = "opened"
	// EvIntent records a step before its call is forwarded.
	EvIntent EventKind = "intent"
	// EvOutcome records how a step's call ended.
	EvOutcome EventKind = "outcome"
	// EvCommitted ends an open saga successfully.
	EvCommitted EventKind = "committed"
	// EvAborted starts unwinding (a failed step, the agent, an operator).
	EvAborted EventKind = "aborted"
	// EvCompStarted records a compensation attempt before it is sent.
	EvCompStarted EventKind = "comp_started"
	// EvCompFinished records a compensation attempt's end, or a decision
	// not to attempt one (needs_human, irreversible, skipped).
	EvCompFinished EventKind = "comp_finished"
	// EvResolved: an operator dealt with a needs_human step by hand.
	EvResolved EventKind = "resolved"
	// EvRetry: an operator asked to retry failed compensations of a stuck saga.
	EvRetry EventKind = "retry"
	// EvStatus sets the saga's status (terminal or resting).
	EvStatus EventKind = "status"
	// EvNote carries information the state does not fold (policy
	// decisions, approvals, captures): kept in the journal for audit.
	EvNote EventKind = "note"
)

// Event is one fact about a saga. Only the fields its kind uses are set.
type Event struct {
	Kind EventKind `json:"kind"`
	Time time.Time `json:"time"`
	Step int       `json:"step,omitempty"`

	Scope  string  `json:"scope,omitempty"`  // opened
	Intent *Intent `json:"intent,omitempty"` // intent

	// outcome: Status is a StepStatus; comp_finished: a CompStatus when
	// no attempt was made or it ended otherwise than failed/compensated;
	// status: a Status.
	Status string          `json:"status,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`

	Reason      string    `json:"reason,omitempty"`  // aborted, resolved, retry
	By          string    `json:"by,omitempty"`      // who: "agent", "operator:<name>", "engine"
	Attempt     int       `json:"attempt,omitempty"` // comp_started, comp_finished
	OK          bool      `json:"ok,omitempty"`      // comp_finished
	NextAttempt time.Time `json:"next_attempt,omitzero"`

	Note json.RawMessage `json:"note,omitempty"` // note
}

// mutableStep returns step n for Apply to change: a copy that replaces the
// original in Steps, so that a Fork taken before keeps its own steps
// (copy on write). It returns nil for an unknown step.
func (s *Saga) mutableStep(n int) *Step {
	st := s.Step(n)
	if st == nil {
		return nil
	}
	cp := *st
	s.Steps[n-1] = &cp
	return &cp
}

// Fork returns a copy of the saga that Apply can change without changing
// s: steps are shared until Apply changes them. It costs one pointer per
// step, where a deep copy would cost the steps' contents.
func (s *Saga) Fork() *Saga {
	c := *s
	c.Steps = slices.Clone(s.Steps)
	return &c
}

// New returns an empty saga, ready for its opened event.
func New(id string) *Saga { return &Saga{ID: id} }

// Apply folds one event into the saga. It returns an error for an event
// that does not fit the state (a step out of order, an outcome for an
// unknown step); the state is then unchanged. Replaying a journal with
// Apply rebuilds the state exactly.
func (s *Saga) Apply(ev Event) error {
	switch ev.Kind {
	case EvOpened:
		if s.Status != "" {
			return fmt.Errorf("saga %s: opened twice", s.ID)
		}
		s.Status, s.Scope, s.Created = Open, ev.Scope, ev.Time
	case EvIntent:
		if ev.Intent == nil {
			return fmt.Errorf("saga %s: intent without a body", s.ID)
		}
		if ev.Step != len(s.Steps)+1 {
			return fmt.Errorf("saga %s: intent for step %d, want step %d", s.ID, ev.Step, len(s.Steps)+1)
		}
		s.Steps = append(s.Steps, &Step{N: ev.Step, Intent: *ev.Intent, Status: InFlight, Started: ev.Time})
	case EvOutcome:
		st := s.mutableStep(ev.Step)
		if st == nil {
			return fmt.Errorf("saga %s: outcome for unknown step %d", s.ID, ev.Step)
		}
		st.Status, st.Result, st.Error, st.Finished = StepStatus(ev.Status), ev.Result, ev.Error, ev.Time
	case EvCommitted:
		s.Status = Committed
	case EvAborted:
		s.Status, s.AbortReason, s.AbortStep = Aborting, ev.Reason, ev.Step
	case EvCompStarted:
		st := s.mutableStep(ev.Step)
		if st == nil {
			return fmt.Errorf("saga %s: compensation of unknown step %d", s.ID, ev.Step)
		}
		st.Comp.Status, st.Comp.Attempts, st.Comp.NextAttempt = CompRunning, ev.Attempt, time.Time{}
	case EvCompFinished:
		st := s.mutableStep(ev.Step)
		if st == nil {
			return fmt.Errorf("saga %s: compensation of unknown step %d", s.ID, ev.Step)
		}
		switch {
		case ev.OK:
			st.Comp.Status, st.Comp.Result, st.Comp.LastError = CompDone, ev.Result, ""
		case ev.Status != "":
			st.Comp.Status, st.Comp.LastError = CompStatus(ev.Status), ev.Error
		default:
			st.Comp.Status, st.Comp.LastError, st.Comp.NextAttempt = CompFailed, ev.Error, ev.NextAttempt
		}
		if ev.Attempt > st.Comp.Attempts {
			st.Comp.Attempts = ev.Attempt
		}
	case EvResolved:
		st := s.mutableStep(ev.Step)
		if st == nil {
			return fmt.Errorf("saga %s: resolve unknown step %d", s.ID, ev.Step)
		}
		st.Comp.Status, st.Comp.LastError = CompResolved, ""
		if s.Status == NeedsHuman || s.Status == Stuck {
			s.Status = Aborting
		}
	case EvRetry:
		for _, st := range s.Steps {
			if st.Comp.Status == CompFailed {
				st = s.mutableStep(st.N)
				st.Comp.Status, st.Comp.Attempts, st.Comp.NextAttempt = CompNone, 0, time.Time{}
			}
		}
		s.Status = Aborting
	case EvStatus:
		s.Status = Status(ev.Status)
	case EvNote:
	default:
		return fmt.Errorf("saga %s: unknown event kind %q", s.ID, ev.Kind)
	}
	s.Updated = ev.Time
	return nil
}

// needsResultFor reports whether c cannot be built for st because st's
// result is unknown.
func (c *Compensator) needsResultFor(st *Step) bool {
	return c != nil && c.NeedsResult && st.Status != Succeeded
}
