package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Scenarios against server-memory 2026.8.31: a knowledge graph built, read
// and taken apart in a fixed order. Each session starts from an empty graph
// file, so the graph read back (and the file left behind) must be identical
// directly and proxied; a proxy that sent a mutating call twice would show
// up as duplicated observations or a different file.
var memoryScenarios = []scenario{
	{"initialize", "initialize, capabilities, serverInfo, ping", scInitialize},
	{"tools-list", "tools/list", func(ctx context.Context, s *session, o *obs) error {
		return listToolsUntil(ctx, s, o, "create_entities", "read_graph")
	}},
	memoryCall("create_entities", map[string]any{"entities": []any{
		map[string]any{"name": "Ada", "entityType": "person", "observations": []string{"wrote the first program"}},
		map[string]any{"name": "Analytical Engine", "entityType": "machine", "observations": []string{"designed by Babbage"}},
		map[string]any{"name": "Babbage", "entityType": "person", "observations": []string{"mathematician"}},
	}}),
	memoryCall("create_relations", map[string]any{"relations": []any{
		map[string]any{"from": "Ada", "to": "Analytical Engine", "relationType": "programmed"},
		map[string]any{"from": "Babbage", "to": "Analytical Engine", "relationType": "designed"},
	}}),
	memoryCall("add_observations", map[string]any{"observations": []any{
		map[string]any{"entityName": "Ada", "contents": []string{"born 1815", "née Byron"}},
	}}),
	memoryCall("read_graph", map[string]any{}),
	memoryCall("search_nodes", map[string]any{"query": "program"}),
	memoryCall("open_nodes", map[string]any{"names": []string{"Babbage"}}),
	{"resources-read", "resources/read memory://knowledge-graph", func(ctx context.Context, s *session, o *obs) error {
		if _, err := s.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "memory://knowledge-graph"}); err != nil {
			return fmt.Errorf("resources/read: %w", err)
		}
		_, err := o.response(s, "resources/read", "resources/read")
		return err
	}},
	memoryCall("delete_observations", map[string]any{"deletions": []any{
		map[string]any{"entityName": "Ada", "observations": []string{"born 1815"}},
	}}),
	memoryCall("delete_relations", map[string]any{"relations": []any{
		map[string]any{"from": "Babbage", "to": "Analytical Engine", "relationType": "designed"},
	}}),
	memoryCall("delete_entities", map[string]any{"entityNames": []string{"Babbage"}}),
	{"final-graph", "read_graph after the deletes, and the graph file", scMemoryFinal},
	{"unknown-tool", "tools/call of an unknown tool", scUnknownTool},
	{"unknown-method", "unknown method: JSON-RPC error", scUnknownMethod},
}

func memoryCall(tool string, args map[string]any) scenario {
	return scenario{id: tool, title: "tools/call " + tool, run: func(ctx context.Context, s *session, o *obs) error {
		res, err := o.callTool(ctx, s, tool, tool, args)
		if err != nil {
			return err
		}
		if res.IsError {
			return fmt.Errorf("%s: isError: %s", tool, resultText(res))
		}
		return nil
	}}
}

func scMemoryFinal(ctx context.Context, s *session, o *obs) error {
	res, err := o.callTool(ctx, s, "read_graph", "read_graph", map[string]any{})
	if err != nil {
		return err
	}
	var g struct {
		Entities []struct {
			Name         string   `json:"name"`
			Observations []string `json:"observations"`
		} `json:"entities"`
		Relations []struct {
			From, To, RelationType string
		} `json:"relations"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &g); err != nil {
		return fmt.Errorf("read_graph structuredContent: %w", err)
	}
	var c checks
	c.expect(len(g.Entities) == 2 && len(g.Relations) == 1, "graph has %d entities and %d relations, want 2 and 1: %s", len(g.Entities), len(g.Relations), b)
	// The graph file is written before the call returns. Each line is one
	// JSON record; compare them as JSON.
	var data []byte
	for range 20 { // the file is written by the time the call returns; allow a slow disk
		data, err = os.ReadFile(s.memFile)
		if err == nil && len(data) > 0 {
			break
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("read the graph file: %w", err)
	}
	var lines []json.RawMessage
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		lines = append(lines, json.RawMessage(l))
	}
	o.addValue("graph file", lines)
	return c.err()
}
