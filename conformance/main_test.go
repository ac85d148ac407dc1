package conformance

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/testservers"
)

var update = flag.Bool("update", false, "rewrite docs/CONFORMANCE.md from this run (also AGENTHELM_UPDATE_CONFORMANCE=1)")

// suite holds what one run of the test binary shares: the agenthelm binary
// built in TestMain, a scratch directory, and the long-lived processes
// (server-everything over HTTP and SSE, agenthelm serve) started on first use
// and stopped when the tests end.
var suite struct {
	tmp      string
	bin      string // the agenthelm binary
	buildErr error

	mu    sync.Mutex
	procs []*proc
	once  map[string]*fixtureOnce
}

type fixtureOnce struct {
	once sync.Once
	val  any
	err  error
}

// fixture runs start once per test binary run under name and returns its
// result (or its error) to every caller.
func fixture[T any](name string, start func() (T, error)) (T, error) {
	suite.mu.Lock()
	if suite.once == nil {
		suite.once = map[string]*fixtureOnce{}
	}
	f, ok := suite.once[name]
	if !ok {
		f = &fixtureOnce{}
		suite.once[name] = f
	}
	suite.mu.Unlock()
	f.once.Do(func() { f.val, f.err = start() })
	if f.err != nil {
		var zero T
		return zero, f.err
	}
	return f.val.(T), nil
}

// track registers a long-lived process to stop at the end of the run.
func track(p *proc) {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	suite.procs = append(suite.procs, p)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("AGENTHELM_UPDATE_CONFORMANCE") == "1" {
		*update = true
	}
	tmp, err := os.MkdirTemp("", "agenthelm-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	suite.tmp = tmp
	suite.bin, suite.buildErr = buildAgenthelm(tmp)
	code := m.Run()
	stopTracked()
	if *update {
		// After every test: the document covers the matrix and the checks.
		if err := writeConformanceDoc(); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: write docs/CONFORMANCE.md:", err)
			code = 1
		}
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// stopTracked stops the shared processes in reverse start order. An
// agenthelm process that misbehaves on SIGTERM (non-zero exit, needed a kill,
// left children behind) is reported on stderr; TestServeStopsCleanly is the
// test that fails for it.
func stopTracked() {
	suite.mu.Lock()
	procs := suite.procs
	suite.procs = nil
	suite.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		kids := descendants(p.pid())
		sig := syscall.SIGTERM
		if strings.HasPrefix(p.name, "node") {
			sig = syscall.SIGKILL // the npm servers are fixtures, not under test
		}
		err, killed := p.stop(sig, 15*time.Second)
		left := reapLeftovers(kids, 5*time.Second)
		if strings.HasPrefix(p.name, "agenthelm") && (err != nil || killed || len(left) > 0) {
			fmt.Fprintf(os.Stderr, "conformance: warning: %s did not stop cleanly on SIGTERM: exit=%v killed=%v leftover children=%v\n",
				p.name, err, killed, left)
		}
	}
}

// buildAgenthelm builds ./cmd/agenthelm into dir once per run.
func buildAgenthelm(dir string) (string, error) {
	bin := filepath.Join(dir, "agenthelm")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/agenthelm")
	cmd.Dir = testservers.Root()
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The first compiler message, not the "# package" header above it.
		msg := ""
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				msg = l
				break
			}
		}
		return "", fmt.Errorf("go build ./cmd/agenthelm: %v: %s", err, msg)
	}
	return bin, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func agenthelmBin() (string, error) {
	if suite.buildErr != nil {
		return "", suite.buildErr
	}
	return suite.bin, nil
}

// nodeServer is server-everything over a network transport, bound to
// loopback by the loopback.cjs preload.
type nodeServer struct {
	p    *proc
	base string // http://127.0.0.1:PORT
}

// everythingOver starts (once) server-everything with transport
// "streamableHttp" or "sse", on a port the kernel picks.
func everythingOver(tb testing.TB, transport string) (*nodeServer, error) {
	argv := testservers.Everything(tb) // node .../dist/index.js stdio
	return fixture("node-"+transport, func() (*nodeServer, error) {
		args := []string{argv[0], "-r", filepath.Join(testservers.NPMDir(), "loopback.cjs"), argv[1], transport}
		env := append(os.Environ(), "PORT=0")
		p, err := startProc("node-everything-"+transport, args, env, testservers.NPMDir())
		if err != nil {
			return nil, err
		}
		track(p)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		line, _, err := p.out.waitLine(ctx, 0, func(s string) bool { return strings.HasPrefix(s, "loopback.cjs listening ") })
		if err != nil {
			return nil, fmt.Errorf("server-everything %s did not report its address: %v\n%s", transport, err, p.out.tail(20))
		}
		var addr struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "loopback.cjs listening ")), &addr); err != nil {
			return nil, fmt.Errorf("server-everything %s: bad address line %q: %v", transport, line, err)
		}
		if addr.Address != "127.0.0.1" {
			return nil, fmt.Errorf("server-everything %s listens on %s, want 127.0.0.1", transport, addr.Address)
		}
		// Check with the kernel, not only with the preload's word for it.
		for _, a := range listenAddrs(addr.Port) {
			if !isLoopbackHex(a) {
				return nil, fmt.Errorf("server-everything %s: a socket on port %d listens on %s (hex), not loopback", transport, addr.Port, a)
			}
		}
		return &nodeServer{p: p, base: fmt.Sprintf("http://127.0.0.1:%d", addr.Port)}, nil
	})
}

// serveProc is a running `agenthelm serve`.
type serveProc struct {
	p         *proc
	dir       string
	mcp       string // http://ADDR of the MCP front door
	listeners map[string]string
}

// startServe writes config (YAML, with journal.dir filled in) into a new
// directory and runs `agenthelm serve` on it until the mcp listener is up.
func startServe(name, config string) (*serveProc, error) {
	return startServeJournal(name, "", config)
}

// startServeJournal is startServe with extra journal settings, such as
// "sync: none" (a YAML flow-mapping body, without braces).
func startServeJournal(name, journal, config string) (*serveProc, error) {
	bin, err := agenthelmBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(suite.tmp, name+"-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "agenthelm.yaml")
	config = proxyConfig + "listen: {mcp: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}\n" +
		"journal: {dir: " + yamlString(filepath.Join(dir, "data")) + journalExtra(journal) + "}\n" + config
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("agenthelm-"+name, []string{bin, "serve", "--config", cfg, "--log-format", "json"}, os.Environ(), dir)
	if err != nil {
		return nil, err
	}
	s := &serveProc{p: p, dir: dir, listeners: map[string]string{}}
	// Wait for the mcp listener (required), then briefly for the others.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from := 0
	for s.listeners["mcp"] == "" || s.listeners["admin"] == "" || s.listeners["http"] == "" {
		var line string
		line, from, err = p.out.waitLine(ctx, from, func(l string) bool { return strings.Contains(l, `"listening"`) })
		if err != nil {
			if s.listeners["mcp"] != "" {
				break // the other listeners are not what this suite tests
			}
			p.stop(syscall.SIGKILL, time.Second)
			return nil, fmt.Errorf("agenthelm serve did not log its mcp listener: %v\nconfig:\n%s\noutput:\n%s", err, config, p.out.tail(30))
		}
		var rec struct {
			Msg      string `json:"msg"`
			Listener string `json:"listener"`
			Addr     string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			s.listeners[rec.Listener] = rec.Addr
		}
		if s.listeners["mcp"] != "" {
			// Listeners are logged together at start: give the rest a moment.
			c2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
			defer cancel2()
			ctx = c2
		}
	}
	s.mcp = "http://" + s.listeners["mcp"]
	return s, nil
}

// proxyConfig is the part of every agenthelm configuration this suite
// writes. The built-in policy (enforce mode) holds every state-changing tool
// that has no compensator for a person's approval, and untrusted upstreams'
// readOnlyHint does not count, so under it even echo waits for a human. The
// suite tests protocol transparency, so it runs the policy in dry-run: every
// call is forwarded, its would-be decision journaled. Sagas, journaling and
// unwinding stay as configured by default.
const proxyConfig = "policy: {mode: dry-run}\n"

// wrapArgs returns the agenthelm wrap command line around argv, with a
// config file that holds proxyConfig.
func wrapArgs(bin string, argv ...string) ([]string, error) {
	cfg, err := fixture("wrap-config", func() (string, error) {
		path := filepath.Join(suite.tmp, "wrap.yaml")
		return path, os.WriteFile(path, []byte(proxyConfig), 0o644)
	})
	if err != nil {
		return nil, err
	}
	return append([]string{bin, "wrap", "--config", cfg, "--"}, argv...), nil
}

// yamlString quotes s for YAML; a JSON string is a valid YAML flow scalar.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func yamlList(items ...string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = yamlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// sharedServe is the one `agenthelm serve` that the matrix and the
// benchmark share. Its upstreams:
//
//	everything              server-everything over stdio
//	ev-http                 server-everything over streamable HTTP
//	ev-sse                  server-everything over legacy SSE
//	memory-<door>-<era>     server-memory over stdio, one per matrix cell so
//	                        that each cell starts from an empty graph
func sharedServe(tb testing.TB) (*serveProc, error) {
	ev := testservers.Everything(tb)
	mem := testservers.Memory(tb)
	return fixture("serve", func() (*serveProc, error) {
		if _, err := agenthelmBin(); err != nil {
			return nil, err
		}
		httpSrv, err := everythingOver(tb, "streamableHttp")
		if err != nil {
			return nil, err
		}
		sseSrv, err := everythingOver(tb, "sse")
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		b.WriteString("upstreams:\n")
		fmt.Fprintf(&b, "  everything: {command: %s}\n", yamlList(ev...))
		fmt.Fprintf(&b, "  ev-http: {url: %s}\n", yamlString(httpSrv.base+"/mcp"))
		fmt.Fprintf(&b, "  ev-sse: {url: %s, transport: sse}\n", yamlString(sseSrv.base+"/sse"))
		memDir := filepath.Join(suite.tmp, "serve-memory")
		if err := os.MkdirAll(memDir, 0o755); err != nil {
			return nil, err
		}
		for _, d := range []string{doorServeHTTP, doorServeSSE} {
			for _, e := range eras {
				name := memoryUpstream(d, e)
				fmt.Fprintf(&b, "  %s: {command: %s, env: {MEMORY_FILE_PATH: %s}}\n",
					name, yamlList(mem...), yamlString(filepath.Join(memDir, name+".jsonl")))
			}
		}
		s, err := startServe("serve", b.String())
		if err != nil {
			return nil, err
		}
		track(s.p)
		return s, nil
	})
}

func journalExtra(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}

// nosyncServe is a serve process whose journal does not fsync, with
// server-everything over stdio: the baseline of the journaled call in
// BenchmarkEcho.
func nosyncServe(tb testing.TB) (*serveProc, error) {
	ev := testservers.Everything(tb)
	return fixture("serve-nosync", func() (*serveProc, error) {
		s, err := startServeJournal("serve-nosync", "sync: none", fmt.Sprintf("upstreams:\n  everything: {command: %s}\n", yamlList(ev...)))
		if err != nil {
			return nil, err
		}
		track(s.p)
		return s, nil
	})
}

func memoryUpstream(door, era string) string {
	return "memory-" + strings.TrimPrefix(door, "serve-") + "-" + era[:4]
}
