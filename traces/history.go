package traces

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
)

// History is one saga as the trace shows it: its folded state, its
// records, and the events it was folded from (empty when only the state
// was available), which hold what the state does not: compensation
// attempts and their times, policy decisions, approvals and other notes.
type History struct {
	Saga    *saga.Saga   `json:"saga"`
	Records []Record     `json:"records"`
	Events  []saga.Event `json:"events,omitempty"`
}

// FromState is the history of a saga known only by its folded state.
func FromState(s *saga.Saga) *History {
	return &History{Saga: s, Records: FromSaga(s)}
}

// Fold replays a saga's events into its history. Compensation records get
// their times from the events: Started is the first attempt's start,
// Finished the last attempt's end.
//
// Errors: an event that does not fit the state (see saga.Saga.Apply).
func Fold(id string, evs []saga.Event) (*History, error) {
	s := saga.New(id)
	for i, ev := range evs {
		if err := s.Apply(ev); err != nil {
			return nil, fmt.Errorf("event %d: %w", i+1, err)
		}
	}
	h := &History{Saga: s, Records: FromSaga(s), Events: evs}
	type span struct {
		start, end time.Time
		ok         bool // the last attempt so far succeeded
	}
	comp := map[int]*span{}
	gate := map[int]*Record{} // decision and approval of a step's call
	for _, ev := range evs {
		switch ev.Kind {
		case saga.EvNote:
			n, ok := ParseNote(ev.Note)
			if !ok || ev.Step == 0 {
				continue
			}
			g := gate[ev.Step]
			if g == nil {
				g = &Record{}
				gate[ev.Step] = g
			}
			switch n.Type {
			case NoteDecision:
				g.Decision = n.Verdict
			case NoteApprovalRequested:
				g.Approval = ApprovalPending
			case NoteApprovalDecided:
				g.Approval, g.Approver = n.Outcome(), n.Decision.By
			}
		case saga.EvRetry:
			// An operator's retry starts the failed compensations over.
			for _, sp := range comp {
				if !sp.ok {
					*sp = span{}
				}
			}
		case saga.EvCompStarted:
			sp := comp[ev.Step]
			if sp == nil {
				sp = &span{}
				comp[ev.Step] = sp
			}
			if sp.start.IsZero() {
				sp.start = ev.Time
			}
		case saga.EvCompFinished:
			if sp := comp[ev.Step]; sp != nil && ev.Attempt > 0 {
				sp.end, sp.ok = ev.Time, ev.OK
			}
		}
	}
	for i := range h.Records {
		r := &h.Records[i]
		if g := gate[r.Step]; g != nil && r.Kind == KindCall {
			r.Decision, r.Approval, r.Approver = g.Decision, g.Approval, g.Approver
		}
		sp := comp[r.Step]
		if r.Kind != KindCompensation || sp == nil {
			continue
		}
		r.Started = sp.start
		if r.Status != StatusRunning {
			r.Finished = sp.end
		}
		r.DurationMS = durationMS(r.Started, r.Finished)
	}
	return h, nil
}

// Note types the engine journals (saga.EvNote bodies, named by "type").
const (
	NoteDecision          = "decision"
	NoteApprovalRequested = "approval_requested"
	NoteApprovalDecided   = "approval_decided"
)

// Approval outcomes of a held call.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
)

// Note is the part of a journaled note the trace reads: a policy decision
// or an approval request or decision. Other notes have only a Type, if any.
type Note struct {
	Type string `json:"type"`
	// decision
	Verdict    string   `json:"verdict"`
	Reasons    []string `json:"reasons"`
	DryRun     bool     `json:"dry_run"`
	Error      string   `json:"error"`
	DurationUS int64    `json:"duration_us"`
	// approval_requested, approval_decided
	ID      string `json:"id"`
	Request *struct {
		Expires time.Time `json:"expires"`
		Reasons []string  `json:"reasons"`
	} `json:"request"`
	Decision *struct {
		Approved bool   `json:"approved"`
		Expired  bool   `json:"expired"`
		By       string `json:"by"`
		Reason   string `json:"reason"`
	} `json:"decision"`
}

// ParseNote reads a note's body; ok is false if it is not a JSON object.
func ParseNote(raw json.RawMessage) (n Note, ok bool) {
	if err := json.Unmarshal(raw, &n); err != nil {
		return Note{}, false
	}
	if n.Type == NoteApprovalDecided && n.Decision == nil {
		n.Type = ""
	}
	return n, true
}

// Outcome is an approval decision's outcome: approved, rejected or
// expired.
func (n Note) Outcome() string {
	switch {
	case n.Decision == nil:
		return ""
	case n.Decision.Approved:
		return ApprovalApproved
	case n.Decision.Expired:
		return ApprovalExpired
	}
	return ApprovalRejected
}

// Attempt is one try of a step's compensation, from the events.
type Attempt struct {
	N        int
	Started  time.Time
	Finished time.Time // zero while it runs
	OK       bool
	Error    string
}

// Attempts returns the compensation attempts of step n, in order.
func (h *History) Attempts(n int) []Attempt {
	var out []Attempt
	for _, ev := range h.Events {
		if ev.Step != n {
			continue
		}
		switch ev.Kind {
		case saga.EvCompStarted:
			out = append(out, Attempt{N: ev.Attempt, Started: ev.Time})
		case saga.EvCompFinished:
			if ev.Attempt == 0 || len(out) == 0 || out[len(out)-1].N != ev.Attempt {
				continue // a decision without an attempt (irreversible, needs_human)
			}
			a := &out[len(out)-1]
			a.Finished, a.OK, a.Error = ev.Time, ev.OK, ev.Error
		}
	}
	return out
}

// EventReader reads a saga's journaled events. *journal.Journal
// implements it.
type EventReader interface {
	// Events returns the saga's events in order; journal.ErrNotFound if
	// there are none.
	Events(ctx context.Context, saga string) ([]journal.Event, error)
}

// Journal is what Collect needs from the journal. *journal.Journal
// implements it.
type Journal interface {
	EventReader
	List(ctx context.Context, f journal.Filter) ([]journal.Head, error)
}

var _ Journal = (*journal.Journal)(nil)

// Load reads a saga's events from the journal and folds its history.
//
// Errors: journal.ErrNotFound (wrapped) for an unknown saga; the journal's
// read errors; an undecodable event.
func Load(ctx context.Context, j EventReader, id string) (*History, error) {
	jevs, err := j.Events(ctx, id)
	if err != nil {
		return nil, err
	}
	evs := make([]saga.Event, 0, len(jevs))
	for _, je := range jevs {
		var ev saga.Event
		if err := json.Unmarshal(je.Body, &ev); err != nil {
			return nil, fmt.Errorf("saga %s event %d: %w", id, je.Seq, err)
		}
		evs = append(evs, ev)
	}
	h, err := Fold(id, evs)
	if err != nil {
		return nil, fmt.Errorf("saga %s: %w", id, err)
	}
	return h, nil
}

// Source is where Collect reads sagas: the journal (FromJournal), or a
// running sidecar's admin API.
type Source interface {
	// List returns saga heads, newest Created first.
	List(ctx context.Context, f journal.Filter) ([]journal.Head, error)
	// History returns one saga's history.
	History(ctx context.Context, id string) (*History, error)
}

// FromJournal reads sagas straight from the journal.
func FromJournal(j Journal) Source { return journalSource{j} }

type journalSource struct{ j Journal }

func (s journalSource) List(ctx context.Context, f journal.Filter) ([]journal.Head, error) {
	return s.j.List(ctx, f)
}

func (s journalSource) History(ctx context.Context, id string) (*History, error) {
	return Load(ctx, s.j, id)
}

// Collect returns the records that match f, newest first (see Sort), at
// most f.Limit of them (0: all). It reads a saga's events only when the
// saga can still contribute: its head was updated at or after f.Since and
// after the oldest record kept so far once Limit are kept.
//
// Errors: the source's; journal.ErrNotFound for f.Saga when it does not
// exist. A saga removed by retention between the listing and its reading
// is skipped.
func Collect(ctx context.Context, src Source, f Filter) ([]Record, error) {
	if f.Saga != "" {
		h, err := src.History(ctx, f.Saga)
		if err != nil {
			return nil, err
		}
		return f.Apply(h.Records), nil
	}
	heads, err := src.List(ctx, journal.Filter{})
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, hd := range heads {
		if !f.Since.IsZero() && hd.Updated.Before(f.Since) {
			continue
		}
		if f.Limit > 0 && len(out) >= f.Limit && !hd.Updated.After(out[f.Limit-1].Started) {
			continue
		}
		h, err := src.History(ctx, hd.Saga)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, r := range h.Records {
			if f.Match(r) {
				out = append(out, r)
			}
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			Sort(out)
			out = out[:f.Limit]
		}
	}
	Sort(out)
	return out, nil
}
