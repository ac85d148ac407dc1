//go:build !linux

package policy

import "time"

func threadCPUTime() (time.Duration, bool) { return 0, false }
