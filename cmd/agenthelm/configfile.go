package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/agenthelm/agenthelm/agentauth"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/proxy/httptool"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

// defaultConfigFile is read when --config is not given and it exists.
const defaultConfigFile = "agenthelm.yaml"

// loadConfig reads path, or ./agenthelm.yaml when path is empty and that
// file exists, or else the built-in defaults (with environment overrides).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			path = defaultConfigFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", defaultConfigFile, err)
		}
	}
	if path == "" {
		return config.Parse(nil, "built-in defaults")
	}
	return config.Load(path)
}

// upstreamSpecs turns the configured MCP upstreams into dial specs,
// resolving ${VAR} references in env and headers now, at start.
func upstreamSpecs(cfg *config.Config) (map[string]upstream.Spec, error) {
	specs := map[string]upstream.Spec{}
	for _, name := range cfg.UpstreamNames() {
		u := cfg.Upstreams[name]
		if len(u.Command) == 0 && u.URL == "" {
			continue // a REST API for the HTTP tool proxy, not an MCP server
		}
		spec, err := upstreamSpec(name, u)
		if err != nil {
			return nil, err
		}
		specs[name] = spec
	}
	return specs, nil
}

func upstreamSpec(name string, u config.Upstream) (upstream.Spec, error) {
	env, err := u.ResolvedEnv()
	if err != nil {
		return upstream.Spec{}, fmt.Errorf("upstreams.%s.env: %w", name, err)
	}
	headers, err := u.ResolvedHeaders()
	if err != nil {
		return upstream.Spec{}, fmt.Errorf("upstreams.%s.headers: %w", name, err)
	}
	spec := upstream.Spec{Name: name, Command: u.Command, Env: env, Dir: u.Cwd, URL: u.URL, Headers: headers}
	switch {
	case len(u.Command) > 0:
		spec.Transport = "stdio"
	case u.Transport == "sse":
		spec.Transport = "sse"
	default:
		spec.Transport = "streamable-http"
	}
	return spec, nil
}

// restUpstreams returns the REST upstreams (upstreams.<name>.http) for the
// HTTP tool proxy, resolving ${VAR} references in their headers now, at
// start.
func restUpstreams(cfg *config.Config) (map[string]httptool.Upstream, error) {
	ups := map[string]httptool.Upstream{}
	for _, name := range cfg.UpstreamNames() {
		u := cfg.Upstreams[name]
		if u.Kind() != config.KindREST {
			continue
		}
		headers, err := u.ResolvedHeaders()
		if err != nil {
			return nil, fmt.Errorf("upstreams.%s.headers: %w", name, err)
		}
		ups[name] = httptool.Upstream{URL: u.HTTP, Headers: headers}
	}
	return ups, nil
}

// newHTTPTool builds the HTTP tool proxy for the REST upstreams and routes,
// handing routed calls to ic. It does not listen (see startSidecar).
func newHTTPTool(cfg *config.Config, log *slog.Logger, ic toolcall.Interceptor, verify func(string) (string, error)) (*httptool.Proxy, error) {
	ups, err := restUpstreams(cfg)
	if err != nil {
		return nil, err
	}
	routes := make([]httptool.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, httptool.Route{Upstream: r.Upstream, Method: r.Method, Path: r.Path, Tool: r.Tool})
	}
	return httptool.New(httptool.Options{
		Upstreams:    ups,
		Routes:       routes,
		Interceptor:  ic,
		Logger:       log.With("component", "httptool"),
		MaxBodyBytes: int64(cfg.Limits.MaxBodyBytes),
		CallTimeout:  time.Duration(cfg.Limits.CallTimeout),
		AgentHeader:  cfg.Saga.AgentHeader,
		VerifyToken:  verify,
	})
}

// agentVerifier builds the front doors' check of agents' bearer tokens
// (saga.agent_token), or nil when tokens are not verified.
func agentVerifier(cfg *config.Config) (func(string) (string, error), error) {
	t := cfg.Saga.AgentToken
	if !t.Enabled() {
		return nil, nil
	}
	secret, err := t.ResolvedSecret()
	if err != nil {
		return nil, err
	}
	v, err := agentauth.New(agentauth.Options{KeysFile: t.KeysFile, Secret: secret, Claim: t.Claim, Issuer: t.Issuer, Audience: t.Audience})
	if err != nil {
		return nil, fmt.Errorf("saga.agent_token: %w", err)
	}
	if !t.Required {
		return v.Subject, nil
	}
	return func(authorization string) (string, error) {
		sub, err := v.Subject(authorization)
		if err == nil && sub == "" {
			err = fmt.Errorf("%w: a bearer token is required (saga.agent_token.required)", agentauth.ErrInvalid)
		}
		return sub, err
	}, nil
}
