package traces

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/journal"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"1h", now.Add(-time.Hour)},
		{"90s", now.Add(-90 * time.Second)},
		{"2h30m", now.Add(-150 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"0.5d", now.Add(-12 * time.Hour)},
		{"2026-11-27T08:15:00Z", time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)},
		{"2026-11-27T09:15:00+01:00", time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)},
		{"2026-11-26", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseSince(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-1h", "1w", "d"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("ParseSince(%q) succeeded, want an error", bad)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)
	h, err := Fold("s1", refundStory(t0))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(f Filter) []string {
		var out []string
		for _, r := range f.Apply(h.Records) {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, newest first", Filter{}, []string{"s1#1.undo", "s1#2.undo", "s1#3", "s1#2", "s1#1"}},
		{"failed", Filter{Status: StatusFailed}, []string{"s1#3"}},
		{"exact outcome", Filter{Status: "tool_error"}, []string{"s1#3"}},
		{"compensated", Filter{Status: "compensated"}, []string{"s1#1.undo", "s1#2.undo"}},
		{"tool", Filter{Tool: "refund_customer"}, []string{"s1#2.undo"}},
		{"upstream", Filter{Upstream: "payments"}, []string{"s1#2.undo", "s1#2"}},
		{"kind", Filter{Kind: KindCall, Status: StatusSuccess}, []string{"s1#2", "s1#1"}},
		{"since", Filter{Since: t0.Add(20 * time.Millisecond)}, []string{"s1#1.undo", "s1#2.undo", "s1#3"}},
		{"limit", Filter{Limit: 2}, []string{"s1#1.undo", "s1#2.undo"}},
		{"other saga", Filter{Saga: "s2"}, nil},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("Filter %s (%+v) = %q, want %q", tc.name, tc.f, got, tc.want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	for _, ok := range []Filter{{}, {Status: "failed"}, {Status: "in_doubt"}, {Status: "stuck_not"}, {Kind: "compensation"}} {
		err := ok.Validate()
		if ok.Status == "stuck_not" {
			if err == nil {
				t.Errorf("Validate(%+v) = nil, want an error naming the statuses", ok)
			}
			continue
		}
		if err != nil {
			t.Errorf("Validate(%+v) = %v", ok, err)
		}
	}
	if err := (Filter{Kind: "step"}).Validate(); err == nil {
		t.Error("Validate(kind step) = nil")
	}
}

func TestQueryRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f := Filter{Status: "failed", Tool: "send_email", Upstream: "email", Kind: KindCall, Saga: "s1", Since: now.Add(-time.Hour), Limit: 7}
	got, err := ParseQuery(f.Query(), now)
	if err != nil || got != f {
		t.Errorf("ParseQuery(Query(%+v)) = %+v, %v", f, got, err)
	}
	got, err = ParseQuery(url.Values{"since": {"1h"}}, now)
	if err != nil || !got.Since.Equal(now.Add(-time.Hour)) {
		t.Errorf("ParseQuery(since=1h) = %+v, %v", got, err)
	}
	for _, bad := range []url.Values{{"limit": {"-1"}}, {"limit": {"x"}}, {"since": {"soon"}}, {"status": {"bogus"}}} {
		if _, err := ParseQuery(bad, now); err == nil {
			t.Errorf("ParseQuery(%v) succeeded", bad)
		}
	}
}

// TestCollect reads a real journal holding several sagas.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	appendSaga(t, j, "old", committedStory(now.Add(-3*time.Hour)))
	appendSaga(t, j, "refund", refundStory(now.Add(-time.Hour)))
	appendSaga(t, j, "new", committedStory(now.Add(-time.Minute)))

	ids := func(f Filter) []string {
		recs, err := Collect(ctx, FromJournal(j), f)
		if err != nil {
			t.Fatalf("Collect(%+v): %v", f, err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"new#1", "refund#1.undo", "refund#2.undo", "refund#3", "refund#2", "refund#1", "old#1"}},
		{"limit", Filter{Limit: 3}, []string{"new#1", "refund#1.undo", "refund#2.undo"}},
		{"since 2h", Filter{Since: now.Add(-2 * time.Hour)}, []string{"new#1", "refund#1.undo", "refund#2.undo", "refund#3", "refund#2", "refund#1"}},
		{"failed", Filter{Status: StatusFailed}, []string{"refund#3"}},
		{"tool", Filter{Tool: "list_bookings"}, []string{"new#1", "old#1"}},
		{"one saga", Filter{Saga: "refund", Kind: KindCompensation}, []string{"refund#1.undo", "refund#2.undo"}},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("Collect %s = %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := Collect(ctx, FromJournal(j), Filter{Saga: "nope"}); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Collect(saga nope) error = %v, want journal.ErrNotFound", err)
	}
	h, err := Load(ctx, j, "refund")
	if err != nil || len(h.Events) != len(refundStory(now)) || h.Saga.Status != "compensated" {
		t.Fatalf("Load(refund) = %+v, %v", h, err)
	}
}
