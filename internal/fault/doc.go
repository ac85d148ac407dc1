// Package fault is a test-only crash switch for the crash tests of
// CORRECTNESS rule 28. In a normal build Point does nothing and costs a
// function call. Built with -tags faultinject, Point(name) kills the
// process with SIGKILL, no deferred code running, when the environment
// variable AGENTHELM_CRASH_AT names that point ("after-intent", or
// "after-intent:2" for its second hit).
package fault
