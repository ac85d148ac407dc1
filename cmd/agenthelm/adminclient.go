package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/config"
)

// errNoSidecar means no sidecar answers on listen.admin: the CLI then opens
// the journal itself.
var errNoSidecar = errors.New("no sidecar is running")

// adminClient talks to a running sidecar's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(cfg *config.Config) *adminClient {
	token, _ := admin.ReadToken(cfg.Admin.Token, cfg.Admin.TokenFile, cfg.Journal.Dir)
	addr := cfg.Listen.Admin
	if rf, ok := readRunFile(cfg.Journal.Dir); ok {
		addr = rf.Admin
	}
	return &adminClient{base: "http://" + addr, token: token, http: &http.Client{Timeout: 5 * time.Minute}}
}

// do sends a request and decodes a JSON answer into out. It returns
// errNoSidecar when nothing listens on the admin address.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	status, data, err := c.roundTrip(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		var e admin.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin API %s: %s", c.base, http.StatusText(status))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// roundTrip sends one request with the admin token and reads the answer
// (at most 256 MiB). It returns errNoSidecar when nothing listens on the
// admin address.
func (c *adminClient) roundTrip(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, nil, errNoSidecar
		}
		return 0, nil, fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("admin API %s: %w", c.base, err)
	}
	return resp.StatusCode, data, nil
}
