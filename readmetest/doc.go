// Package readmetest follows README.md literally: it reads the commands of
// the "Two commands" section from the file and runs them on a fresh clone of
// the committed HEAD, as a newcomer would, so that the README cannot rot and
// HEAD is known to hold everything they need.
//
// It has no Go code, only that test, which is skipped with -short. It must
// not import the rest of the module: it checks the repository from outside.
package readmetest
