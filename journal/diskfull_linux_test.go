package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestDiskFull fills a size-limited tmpfs. Without the journal's free-space
// reserve Badger would die of SIGBUS writing its memory-mapped log into the
// full filesystem; with it Append fails with an ENOSPC-based error, every
// acknowledged event survives a reopen, and appends work again once there
// is space.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=72m"); err != nil {
		t.Skipf("cannot mount a size-limited tmpfs here (%v): disk-full behaviour not tested", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	ctx := context.Background()
	dir := filepath.Join(mnt, "journal")
	j, err := Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		t.Fatal(err)
	}

	body := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 16<<10))
	var (
		mu      sync.Mutex
		acked   = map[string][]uint64{}
		fullErr error
		wg      sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			saga := fmt.Sprintf("s%d", w)
			for range 100000 {
				seqs, err := j.Append(ctx, Batch{Saga: saga, Events: []Event{{Kind: "k", Body: []byte(body)}}})
				mu.Lock()
				if err != nil {
					if fullErr == nil {
						fullErr = err
					}
					mu.Unlock()
					return
				}
				acked[saga] = append(acked[saga], seqs[0])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	n := 0
	for _, s := range acked {
		n += len(s)
	}
	t.Logf("%d events acknowledged, then: %v", n, fullErr)
	if !errors.Is(fullErr, ErrDiskFull) || !errors.Is(fullErr, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk = %v, want ErrDiskFull matching ENOSPC", fullErr)
	}
	if !strings.Contains(fullErr.Error(), "journal: disk full: ") || !strings.Contains(fullErr.Error(), "no space left on device") {
		t.Errorf("error %q does not say the disk is full", fullErr)
	}
	if n < 100 {
		t.Fatalf("only %d events fit before the disk was full", n)
	}
	if err := j.Healthy(); !errors.Is(err, ErrDiskFull) {
		t.Errorf("Healthy() = %v, want ErrDiskFull", err)
	}
	if err := j.Close(ctx); err != nil {
		t.Fatalf("Close on a full disk: %v", err)
	}

	// Every acknowledged event is there after reopening on the full disk.
	j, err = Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	defer j.Close(ctx)
	for saga, seqs := range acked {
		events, err := j.Events(ctx, saga)
		if err != nil {
			t.Fatalf("Events(%s): %v", saga, err)
		}
		if len(events) != len(seqs) {
			t.Errorf("saga %s: %d events stored, %d acknowledged", saga, len(events), len(seqs))
		}
		for i, e := range events {
			if e.Seq != uint64(i+1) || string(e.Body) != body {
				t.Errorf("saga %s event %d: seq %d, body of %d bytes", saga, i, e.Seq, len(e.Body))
			}
		}
	}

	// Disk full is not sticky: with space again, appends succeed.
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=256m"); err != nil {
		t.Fatalf("grow tmpfs: %v", err)
	}
	if _, err := j.Append(ctx, Batch{Saga: "s0", Events: []Event{ev("after", "")}}); err != nil {
		t.Errorf("Append after space was freed: %v", err)
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("Healthy() after space was freed: %v", err)
	}
}
