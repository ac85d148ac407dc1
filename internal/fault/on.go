//go:build faultinject

package fault

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var (
	mu   sync.Mutex
	hits = map[string]int{}
)

// Point kills the process when AGENTHELM_CRASH_AT names this point and
// hit count.
func Point(name string) {
	want := os.Getenv("AGENTHELM_CRASH_AT")
	if want == "" {
		return
	}
	point, nth := want, 1
	if p, n, ok := strings.Cut(want, ":"); ok {
		point = p
		nth, _ = strconv.Atoi(n)
	}
	if point != name {
		return
	}
	mu.Lock()
	hits[name]++
	hit := hits[name]
	mu.Unlock()
	if hit == nth {
		os.Stderr.WriteString("fault: crashing at " + want + "\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never return: the signal is on its way
	}
}
