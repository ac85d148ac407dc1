package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/agenthelm/agenthelm/compensators"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// checkUpstreams lists every MCP upstream's tools once at start-up, in the
// background (a slow upstream must not delay serving): it reports rules
// that name tools an upstream does not have, and feeds the tool
// annotations of trusted upstreams to the rules. It uses agenthelm's own
// operator session, which compensations reuse later.
func (s *stack) checkUpstreams(ctx context.Context, names []string) {
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			tools, err := listTools(cctx, s, name)
			if err != nil {
				s.log.Warn("could not list the upstream's tools to check its rules", "upstream", name, "err", err)
				return
			}
			ann := map[string]compensators.Annotations{}
			var toolNames []string
			for _, t := range tools {
				toolNames = append(toolNames, t.Name)
				if t.Annotations != nil {
					ann[t.Name] = *t.Annotations
				}
			}
			s.rules.set.SetAnnotations(name, ann)
			for _, err := range s.rules.set.Check(name, toolNames) {
				s.log.Error("rule names a tool the upstream does not have", "upstream", name, "err", err)
			}
			s.log.Info("upstream checked", "upstream", name, "tools", len(toolNames))
		}()
	}
	wg.Wait()
}

type listedTool struct {
	Name        string                    `json:"name"`
	Annotations *compensators.Annotations `json:"annotations"`
}

// listTools pages through an upstream's tools/list.
func listTools(ctx context.Context, s *stack, upstream string) ([]listedTool, error) {
	var all []listedTool
	cursor := ""
	for page := 0; page < 100; page++ {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			params, _ = jsonrpc.Marshal(map[string]string{"cursor": cursor})
		}
		res, err := s.proxy.Invoke(ctx, upstream, "", "tools/list", params)
		if err != nil {
			return nil, err
		}
		if res.Error != nil {
			return nil, res.Error
		}
		var r struct {
			Tools      []listedTool `json:"tools"`
			NextCursor string       `json:"nextCursor"`
		}
		if err := json.Unmarshal(res.Result, &r); err != nil {
			return nil, fmt.Errorf("tools/list result: %w", err)
		}
		all = append(all, r.Tools...)
		if r.NextCursor == "" {
			return all, nil
		}
		cursor = r.NextCursor
	}
	return all, fmt.Errorf("tools/list: more than 100 pages")
}
