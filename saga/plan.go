package saga

import (
	"slices"
	"time"
)

// Policy is how unwinding behaves. The zero value means: 8 attempts,
// backoff from 1 s doubling to at most 5 min, stop at the first failure.
type Policy struct {
	MaxAttempts         int
	InitialBackoff      time.Duration
	MaxBackoff          time.Duration
	ContinuePastFailure bool
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Minute
	}
	return p
}

// Backoff is the wait before the attempt after attempt n (1-based):
// capped exponential, so retries are deterministic and persistable.
func (p Policy) Backoff(n int) time.Duration {
	p = p.withDefaults()
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// ActionKind says what the driver should do next.
type ActionKind string

// Actions.
const (
	// ActCompensate: journal comp_started, run the step's compensation,
	// journal comp_finished.
	ActCompensate ActionKind = "compensate"
	// ActWait: nothing to do before At (a scheduled retry).
	ActWait ActionKind = "wait"
	// ActMarkNeedsHuman: journal comp_finished{needs_human} for Step: its
	// compensation needs a result that is unknown (rule 11).
	ActMarkNeedsHuman ActionKind = "mark_needs_human"
	// ActMarkIrreversible: journal comp_finished{irreversible} for Step: it
	// has no compensator and is not read-only.
	ActMarkIrreversible ActionKind = "mark_irreversible"
	// ActSkip: journal comp_finished{skipped} for Step (continue past a
	// failure, when configured).
	ActSkip ActionKind = "skip"
	// ActSetStatus: journal status{Status}.
	ActSetStatus ActionKind = "set_status"
)

// Action is one thing the driver should do, in order.
type Action struct {
	Kind    ActionKind
	Step    int
	Attempt int
	At      time.Time
	Status  Status
}

// Plan returns the next action of an unwinding saga, given the time now.
// It returns nothing when there is nothing to do: the saga is not
// unwinding, or a step's forward call is still in flight (rule 14: wait),
// or a compensation is running. It walks the steps in strict reverse order
// of completion (rule 9; for sequential calls that is reverse step order):
// a step is considered only when every step completed after it is
// compensated, not in need of it, or skipped.
//
// The driver applies the events it journals for an action and calls Plan
// again, until Plan returns nothing or ActWait.
func (s *Saga) Plan(p Policy, now time.Time) []Action {
	if s.Status != Aborting {
		return nil
	}
	p = p.withDefaults()
	if s.InFlight() > 0 {
		return nil
	}
	for _, st := range s.unwindOrder() {
		if !st.needsCompensation() {
			continue
		}
		switch st.Comp.Status {
		case CompDone, CompResolved, CompSkipped, CompIrreversible:
			continue
		case CompNeedsHuman:
			return []Action{{Kind: ActSetStatus, Status: NeedsHuman}}
		case CompRunning:
			// Only seen after a crash interrupted an attempt (the driver
			// plans only when none runs): send the same attempt again,
			// under the same idempotency key.
			return []Action{{Kind: ActCompensate, Step: st.N, Attempt: st.Comp.Attempts}}
		case CompFailed:
			if st.Comp.Attempts >= p.MaxAttempts {
				if p.ContinuePastFailure {
					return []Action{{Kind: ActSkip, Step: st.N}}
				}
				return []Action{{Kind: ActSetStatus, Status: Stuck}}
			}
			if st.Comp.NextAttempt.After(now) {
				return []Action{{Kind: ActWait, Step: st.N, At: st.Comp.NextAttempt}}
			}
			return []Action{{Kind: ActCompensate, Step: st.N, Attempt: st.Comp.Attempts + 1}}
		}
		// Not attempted yet.
		switch {
		case st.Compensator == nil || st.Irreversible:
			return []Action{{Kind: ActMarkIrreversible, Step: st.N}}
		case st.Compensator.needsResultFor(st):
			return []Action{{Kind: ActMarkNeedsHuman, Step: st.N}}
		}
		return []Action{{Kind: ActCompensate, Step: st.N, Attempt: 1}}
	}
	return []Action{{Kind: ActSetStatus, Status: Compensated}}
}

// unwindOrder is the order in which steps are undone: the reverse of the
// order they completed in (parallel calls of one saga can complete out of
// step order), steps completed at the same instant newest step first.
func (s *Saga) unwindOrder() []*Step {
	order := slices.Clone(s.Steps)
	slices.SortStableFunc(order, func(a, b *Step) int {
		if c := b.Finished.Compare(a.Finished); c != 0 {
			return c
		}
		return b.N - a.N
	})
	return order
}
