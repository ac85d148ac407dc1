//go:build !(linux || darwin || freebsd)

package journal

import "errors"

// freeBytes is not implemented here; the free-space reserve is not enforced.
func freeBytes(string) (uint64, error) {
	return 0, errors.New("free space unknown on this platform")
}
