package configs_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/examples/configs"
	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Every example file passes the real, strict config loader.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d example configs, want demo, memory, filesystem and rest", len(files))
	}
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			t.Errorf("config.Load(%s):\n%v", f, err)
			continue
		}
		if w := cfg.Warnings(); len(w) > 0 {
			t.Errorf("config.Load(%s) warns: %q", f, w)
		}
	}
}

func TestDemoIsEmbedded(t *testing.T) {
	onDisk, err := os.ReadFile("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(configs.Demo) {
		t.Error("configs.Demo differs from demo.yaml")
	}
}

// The compensations in demo.yaml build the right arguments from what the
// example servers really return.
func TestDemoCompensationsMatchServers(t *testing.T) {
	cfg, err := config.Parse(configs.Demo, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(slices.Sorted(slices.Values(toolservers.Names)), cfg.UpstreamNames()); d != "" {
		t.Errorf("demo.yaml upstreams (-example servers +config):\n%s", d)
	}
	tests := []struct {
		server, tool string
		args         map[string]any
		wantTool     string
		wantArgs     map[string]any
	}{
		{"hotel", "book_hotel", map[string]any{"guest": "Ana", "hotel": "H", "nights": 2},
			"cancel_hotel_booking", map[string]any{"booking_id": "bk_0001"}},
		{"payments", "charge_customer", map[string]any{"customer": "cus_ana", "amount": 1840.5, "currency": "EUR"},
			"refund_customer", map[string]any{"charge_id": "ch_0001"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range tests {
		rule := cfg.Upstreams[tt.server].Tools[tt.tool].Compensate
		if rule == nil || rule.Tool != tt.wantTool {
			t.Errorf("%s.%s compensate = %+v, want tool %s", tt.server, tt.tool, rule, tt.wantTool)
			continue
		}
		r, err := toolservers.Start(ctx, tt.server, toolservers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx) //nolint:errcheck
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).
			Connect(ctx, &mcp.StreamableClientTransport{Endpoint: r.URL()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tt.tool, Arguments: tt.args})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", tt.tool, err, res)
		}
		var doc map[string]any // {args, result} as the saga engine sees them
		raw, _ := json.Marshal(map[string]any{"args": tt.args, "result": res})
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		got, err := rule.Args.Eval(ctx, doc)
		if err != nil {
			t.Errorf("%s.%s compensate.args: %v", tt.server, tt.tool, err)
			continue
		}
		if d := cmp.Diff(tt.wantArgs, got); d != "" {
			t.Errorf("%s.%s compensate.args %s (-want +got):\n%s", tt.server, tt.tool, rule.Args, d)
		}
		if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: rule.Tool, Arguments: got}); err != nil || res.IsError {
			t.Errorf("%s with %v: %v %+v", rule.Tool, got, err, res)
		}
	}
	if !cfg.Upstreams["email"].Tools["send_email"].Irreversible {
		t.Error("email.send_email is not marked irreversible")
	}
}

// The client snippets are valid JSON and point at upstreams demo.yaml has.
func TestClientSnippets(t *testing.T) {
	cfg, err := config.Parse(configs.Demo, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../clients/*.json")
	if len(files) < 2 {
		t.Fatalf("found %d client snippets, want wrap.json and http.json", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var snippet struct {
			MCPServers map[string]struct {
				Command string   `json:"command"`
				Args    []string `json:"args"`
				URL     string   `json:"url"`
			} `json:"mcpServers"`
		}
		if err := json.Unmarshal(data, &snippet); err != nil || len(snippet.MCPServers) == 0 {
			t.Errorf("%s: %v (servers: %d)", f, err, len(snippet.MCPServers))
			continue
		}
		for name, s := range snippet.MCPServers {
			switch {
			case s.URL != "":
				u, err := url.Parse(s.URL)
				up, ok := strings.CutPrefix(u.Path, "/mcp/")
				if err != nil || !ok || u.Host != cfg.Listen.MCP {
					t.Errorf("%s: %s: url %s is not http://%s/mcp/<upstream>", f, name, s.URL, cfg.Listen.MCP)
				} else if _, known := cfg.Upstreams[up]; !known {
					t.Errorf("%s: %s: upstream %q is not in demo.yaml", f, name, up)
				}
			case s.Command == "agenthelm":
				if len(s.Args) < 2 || s.Args[0] != "wrap" {
					t.Errorf("%s: %s: args %q do not start with wrap", f, name, s.Args)
				}
			default:
				t.Errorf("%s: %s: neither an agenthelm command nor a url", f, name)
			}
		}
	}
}
