//go:build unix

package engine_test

import (
	"syscall"
	"time"
)

// processUsage is the CPU time (user and system) the test process has
// used, client, proxy, engine, journal and upstream together, and the
// times its threads blocked (voluntary context switches). Per call the
// first tells CPU cost from waiting, which wall-clock throughput on a
// shared machine mixes up; the second counts the thread hand-offs that
// blocking system calls such as fsync cost.
func processUsage() (cpu time.Duration, switches int64, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), int64(ru.Nvcsw), true
}
