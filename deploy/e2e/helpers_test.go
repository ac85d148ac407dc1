//go:build jaeger

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/agenthelm/agenthelm/internal/syncbuf"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// root is the repository root, relative to this package.
var root, _ = filepath.Abs(filepath.Join("..", ".."))

// agenthelmBin is the agenthelm binary TestMain builds.
var agenthelmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agenthelm-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agenthelmBin = filepath.Join(dir, "agenthelm")
	build := exec.Command("go", "build", "-o", agenthelmBin, "./cmd/agenthelm")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build agenthelm:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	jaegerOnce sync.Once
	jaegerPath string
	jaegerErr  error
)

// jaegerBinary returns the Jaeger program: $AGENTHELM_JAEGER_BIN, or the
// one deploy/jaeger/build.sh keeps in its cache, built on first use.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	jaegerOnce.Do(func() {
		start := time.Now()
		var out, errb bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "deploy", "jaeger", "build.sh"))
		cmd.Stdout, cmd.Stderr = &out, &errb
		if jaegerErr = cmd.Run(); jaegerErr != nil {
			jaegerErr = fmt.Errorf("deploy/jaeger/build.sh: %v\n%s", jaegerErr, errb.String())
			return
		}
		jaegerPath = strings.TrimSpace(out.String())
		t.Logf("jaeger: %s (ready in %s)", jaegerPath, time.Since(start).Round(time.Second))
	})
	if jaegerErr != nil {
		t.Fatal(jaegerErr)
	}
	return jaegerPath
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// proc is a program the test started; Cleanup stops it with SIGTERM (then
// SIGKILL) and waits for it.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer = syncbuf.Buffer

func startProc(t *testing.T, name string, env []string, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(prog, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 60))
		}
	})
	return p
}

func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20 s of SIGTERM: killed", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// eventually retries check every 100 ms until it returns nil or timeout
// passes; it returns check's last error.
func eventually(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(url, token string) ([]byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, tail(string(body), 5))
	}
	return body, nil
}

// jaeger is a Jaeger all-in-one the test runs on free loopback ports with
// deploy/jaeger/config.yaml.
type jaeger struct {
	query, otlpHTTP, otlpGRPC, health string // host:port
	p                                 *proc
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	ports := freePorts(t, 5)
	j := &jaeger{
		query:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		otlpHTTP: fmt.Sprintf("127.0.0.1:%d", ports[2]),
		otlpGRPC: fmt.Sprintf("127.0.0.1:%d", ports[3]),
		health:   fmt.Sprintf("127.0.0.1:%d", ports[4]),
	}
	env := []string{
		"JAEGER_QUERY_HTTP=" + j.query,
		fmt.Sprintf("JAEGER_QUERY_GRPC=127.0.0.1:%d", ports[1]),
		"JAEGER_OTLP_HTTP=" + j.otlpHTTP,
		"JAEGER_OTLP_GRPC=" + j.otlpGRPC,
		"JAEGER_HEALTH_HTTP=" + j.health,
	}
	j.p = startProc(t, "jaeger", env, bin, "--config", filepath.Join(root, "deploy", "jaeger", "config.yaml"))
	err := eventually(60*time.Second, func() error {
		if j.p.exited() {
			return fmt.Errorf("jaeger exited: %v", j.p.err)
		}
		if _, err := httpGet("http://"+j.health+"/status", ""); err != nil {
			return err
		}
		_, err := httpGet("http://"+j.query+"/api/services", "")
		return err
	})
	if err != nil {
		t.Fatalf("jaeger did not start: %v\n%s", err, tail(j.p.out.String(), 30))
	}
	return j
}

// Jaeger's query API (api/v1 JSON).
type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	Tags          []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// kind is the span's kind as Jaeger shows it: server, client, internal.
func (s jaegerSpan) kind() string {
	if k := s.tag("span.kind"); k != "" {
		return k
	}
	return "internal"
}

// traces returns the spans of every trace of service in Jaeger.
func (j *jaeger) spans(service string) ([]jaegerSpan, error) {
	body, err := httpGet("http://"+j.query+"/api/traces?service="+service+"&limit=1000&lookback=1h", "")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode /api/traces: %w", err)
	}
	var out []jaegerSpan
	for _, tr := range resp.Data {
		out = append(out, tr.Spans...)
	}
	return out, nil
}

// trace returns one trace's spans.
func (j *jaeger) trace(id string) ([]jaegerSpan, error) {
	body, err := httpGet("http://"+j.query+"/api/traces/"+id, "")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode /api/traces/%s: %w", id, err)
	}
	if len(resp.Data) == 0 {
		return nil, fmt.Errorf("trace %s not found", id)
	}
	return resp.Data[0].Spans, nil
}

// allowAll is a policy that lets every call through, so no call of the
// test's saga waits for a person.
const allowAll = `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}
`

func allowAllPolicy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "allow.rego"), []byte(allowAll), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// exampleServers starts hotel, payments and email on loopback.
func exampleServers(t *testing.T) map[string]string {
	t.Helper()
	urls := map[string]string{}
	for _, name := range toolservers.Names {
		r, err := toolservers.Start(context.Background(), name, toolservers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		urls[name] = r.URL()
	}
	return urls
}

// sidecar is `agenthelm serve` running as its own process.
type sidecar struct {
	p          *proc
	config     string
	mcp, admin string
	dataDir    string
	adminToken string
}

// startSidecar runs the agenthelm binary with configYAML ($DIR is its
// directory) and waits for its listeners.
func startSidecar(t *testing.T, configYAML string, env ...string) *sidecar {
	t.Helper()
	dir := t.TempDir()
	s := &sidecar{config: filepath.Join(dir, "agenthelm.yaml"), dataDir: filepath.Join(dir, "data")}
	if err := os.WriteFile(s.config, []byte(strings.ReplaceAll(configYAML, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.p = startProc(t, "agenthelm", env, agenthelmBin, "serve", "--config", s.config, "--log-format", "json")
	re := regexp.MustCompile(`"msg":"listening","listener":"(\w+)","addr":"([^"]+)"`)
	err := eventually(30*time.Second, func() error {
		if s.p.exited() {
			return fmt.Errorf("agenthelm exited: %v", s.p.err)
		}
		for _, m := range re.FindAllStringSubmatch(s.p.out.String(), -1) {
			switch m[1] {
			case "mcp":
				s.mcp = m[2]
			case "admin":
				s.admin = m[2]
			}
		}
		if s.mcp == "" || s.admin == "" {
			return fmt.Errorf("no listening lines yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("agenthelm did not start: %v\n%s", err, tail(s.p.out.String(), 30))
	}
	tok, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	s.adminToken = strings.TrimSpace(string(tok))
	return s
}

// cli runs the agenthelm binary with args.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(agenthelmBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("agenthelm %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// traceparent is the W3C trace context the test agent sends with every
// call, so that all of them are one trace in Jaeger.
type traceparent struct{ traceID, header string }

func newTraceparent() traceparent {
	id := fmt.Sprintf("%016x%016x", time.Now().UnixNano(), os.Getpid())
	return traceparent{traceID: id, header: "00-" + id + "-" + fmt.Sprintf("%016x", time.Now().UnixNano()|1) + "-01"}
}

// refundCalls is the demo's story: a booking and a charge succeed, the
// receipt email bounces and agenthelm unwinds the saga.
var refundCalls = []struct {
	upstream, tool, args string
	fails                bool
}{
	{"hotel", "book_hotel", `{"guest":"Ana Lima","hotel":"Hotel Lisboa Centro","nights":3}`, false},
	{"payments", "charge_customer", `{"customer":"cus_ana_lima","amount":1840,"currency":"EUR"}`, false},
	{"email", "send_email", `{"to":"ana@` + toolservers.BounceDomain + `","subject":"Your stay","body":"Booked."}`, true},
}

// runRefundSaga makes the story's calls through the MCP front door at
// mcpAddr, each carrying tp, and waits until the CLI shows the saga
// compensated. It returns the saga id.
func runRefundSaga(t *testing.T, mcpAddr, configPath string, tp traceparent) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1"}, nil)
	for _, c := range refundCalls {
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://" + mcpAddr + "/mcp/" + c.upstream},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatalf("connect %s: %v", c.upstream, err)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: json.RawMessage(c.args), Meta: mcp.Meta{"traceparent": tp.header}})
		cs.Close()
		if err != nil {
			t.Fatalf("%s/%s: %v", c.upstream, c.tool, err)
		}
		if res.IsError != c.fails {
			t.Fatalf("%s/%s: isError = %v, want %v: %+v", c.upstream, c.tool, res.IsError, c.fails, res.Content)
		}
	}
	var id string
	err := eventually(30*time.Second, func() error {
		var heads []struct{ Saga, Status string }
		if err := json.Unmarshal([]byte(cli(t, "sagas", "list", "--json", "--config", configPath)), &heads); err != nil {
			return err
		}
		if len(heads) != 1 || heads[0].Status != "compensated" {
			return fmt.Errorf("sagas: %+v, want one compensated", heads)
		}
		id = heads[0].Saga
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
