package upstream

import "syscall"

// childProcAttr puts a stdio server in its own process group (so Close can
// end its whole tree) and, through Pdeathsig, ends it if agenthelm itself is
// killed (SIGKILL, OOM). Pdeathsig fires when the forking OS thread exits;
// Go keeps its threads, so in practice that is the process.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
