//go:build !faultinject

package fault

// Point marks a crash boundary. It does nothing in normal builds.
func Point(string) {}
