package upstream

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// The test binary doubles as a tiny stdio MCP server for error paths that a
// real server does not produce on demand: it re-executes itself with
// childEnv set to a mode.
const childEnv = "AGENTHELM_UPSTREAM_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// childCommand returns the argv and env that start the test child in mode.
func childCommand(mode string) ([]string, map[string]string) {
	// A race-enabled binary sleeps a second at exit by default.
	return []string{os.Args[0], "-test.run=^$"}, map[string]string{childEnv: mode, "GORACE": "atexit_sleep_ms=0"}
}

// Modes:
//
//	echo       answer every request with {"echo": params}
//	oversize   first write a 4 KiB line, then a notification, then echo
//	malformed  first write a line that is not JSON, then a notification, then echo
//	exit       write stderr lines, then exit with status 3
//	grandchild start a SIGTERM-ignoring grandchild that holds stdout and
//	           reports its pid in a notification, then echo; exit at stdin EOF
//	stubborn   ignore SIGTERM and stdin EOF; echo until killed
//	silent     read and never answer; exit at stdin EOF
//	deaf       never read stdin
//	sleeper    (the grandchild) ignore SIGTERM and sleep
func runChild(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	emit := func(line string) {
		out.WriteString(line + "\n")
		out.Flush()
	}
	switch mode {
	case "oversize":
		emit(`{"jsonrpc":"2.0","method":"notifications/huge","params":{"pad":"` + strings.Repeat("x", 4096) + `"}}`)
		emit(`{"jsonrpc":"2.0","method":"notifications/after"}`)
	case "malformed":
		emit(`this is not json {`)
		emit(`{"jsonrpc":"2.0","method":"notifications/after"}`)
	case "exit":
		for i := 1; i <= 12; i++ {
			fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
		}
		fmt.Fprintln(os.Stderr, "boom: cannot continue")
		return 3
	case "sleeper":
		signal.Ignore(syscall.SIGTERM)
		// Announce itself only now, so that a SIGTERM sent after the
		// announcement is sure to be ignored.
		emit(fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/grandchild","params":{"pid":%d}}`, os.Getpid()))
		time.Sleep(time.Minute)
		return 0
	case "grandchild":
		gc := exec.Command(os.Args[0], "-test.run=^$")
		gc.Env = append(os.Environ(), childEnv+"=sleeper")
		gc.Stdout = os.Stdout // holds the pipe open after we exit
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	case "deaf":
		time.Sleep(time.Minute)
		return 0
	}
	in := jsonrpc.NewLineReader(os.Stdin, 0)
	for {
		line, err := in.Next()
		if err != nil {
			if mode == "stubborn" {
				time.Sleep(time.Minute)
			}
			return 0
		}
		msg, perr := jsonrpc.Parse(line)
		if perr != nil || !msg.IsRequest() || mode == "silent" {
			continue
		}
		params := msg.Params
		if params == nil {
			params = []byte("null")
		}
		emit(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"echo":%s}}`, msg.ID, params))
	}
}
