//go:build !unix

package engine_test

import "time"

func processUsage() (time.Duration, int64, bool) { return 0, 0, false }
