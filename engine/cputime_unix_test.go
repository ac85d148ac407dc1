//go:build unix

package engine_test

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time (user and system) the test process has
// used: client, proxy, engine, journal and upstream together. Per call it
// tells CPU cost from waiting, which wall-clock throughput on a shared
// machine mixes up.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
