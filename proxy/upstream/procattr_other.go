//go:build !linux

package upstream

import "syscall"

// childProcAttr puts a stdio server in its own process group, so Close can
// end its whole tree.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
