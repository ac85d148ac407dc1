package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Environment variables that override the file. They are applied after the
// file is decoded and before Validate; an unset or empty variable changes
// nothing.
const (
	EnvListenMCP   = "AGENTHELM_LISTEN_MCP"   // listen.mcp
	EnvListenHTTP  = "AGENTHELM_LISTEN_HTTP"  // listen.http
	EnvListenAdmin = "AGENTHELM_LISTEN_ADMIN" // listen.admin
	EnvDataDir     = "AGENTHELM_DATA_DIR"     // journal.dir
	EnvLogLevel    = "AGENTHELM_LOG_LEVEL"    // log.level (case-insensitive)
	EnvAdminToken  = "AGENTHELM_ADMIN_TOKEN"  // admin.token (and clears admin.token_file)
)

// envOverrides lists the overrides in the order they are applied.
var envOverrides = []struct {
	name  string
	field fieldPath
	set   func(c *Config, v string)
}{
	{EnvListenMCP, fieldPath{}.key("listen").key("mcp"), func(c *Config, v string) { c.Listen.MCP = v }},
	{EnvListenHTTP, fieldPath{}.key("listen").key("http"), func(c *Config, v string) { c.Listen.HTTP = v }},
	{EnvListenAdmin, fieldPath{}.key("listen").key("admin"), func(c *Config, v string) { c.Listen.Admin = v }},
	{EnvDataDir, fieldPath{}.key("journal").key("dir"), func(c *Config, v string) { c.Journal.Dir = v }},
	{EnvLogLevel, fieldPath{}.key("log").key("level"), func(c *Config, v string) { c.Log.Level = strings.ToLower(v) }},
	{EnvAdminToken, fieldPath{}.key("admin").key("token"), func(c *Config, v string) {
		c.Admin.Token = v
		c.Admin.TokenFile = ""
	}},
}

// Standard OpenTelemetry variables that select the otlp exporter when the
// file does not set telemetry.exporter.
var otelEndpointVars = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}

// ApplyEnv applies the AGENTHELM_* overrides read through lookup (nil
// means os.LookupEnv), and selects the otlp exporter when the file did not
// set telemetry.exporter and an OTEL_EXPORTER_OTLP_*ENDPOINT variable is
// set. Load and Parse call it; a program that runs without a config file
// calls it on Default() before Validate.
func (c *Config) ApplyEnv(lookup func(key string) (string, bool)) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	c.applyEnv(lookup)
}

func (c *Config) applyEnv(lookup func(string) (string, bool)) {
	for _, o := range envOverrides {
		v, ok := lookup(o.name)
		if !ok || v == "" {
			continue
		}
		o.set(c, v)
		if c.fromEnv == nil {
			c.fromEnv = map[string]string{}
		}
		c.fromEnv[o.field.String()] = o.name
	}
	if _, set := c.lines["telemetry.exporter"]; !set && c.Telemetry.Exporter == ExporterNone {
		for _, name := range otelEndpointVars {
			if v, ok := lookup(name); ok && v != "" {
				c.Telemetry.Exporter = ExporterOTLP
				break
			}
		}
	}
}

// ResolvedEnv returns Env with every "${VAR}" replaced by the value of VAR
// in agenthelm's environment. An unset variable is an error naming it (all
// of them, joined). Call it when starting the server process, never at
// load, so that the Config holds no secrets.
func (u Upstream) ResolvedEnv() (map[string]string, error) {
	return resolveMap(u.Env, u.field("env"), os.LookupEnv)
}

// ResolvedHeaders is ResolvedEnv for Headers.
func (u Upstream) ResolvedHeaders() (map[string]string, error) {
	return resolveMap(u.Headers, u.field("headers"), os.LookupEnv)
}

// VarNames returns the names of the environment variables that Env and
// Headers read through "${VAR}", sorted, without duplicates. The journal
// records these names, never their values.
func (u Upstream) VarNames() []string {
	var names []string
	for _, m := range []map[string]string{u.Env, u.Headers} {
		for _, v := range m {
			names = append(names, refs(v)...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func (u Upstream) field(name string) fieldPath {
	if u.Name == "" {
		return fieldPath{}.key(name)
	}
	return fieldPath{}.key("upstreams").key(u.Name).key(name)
}

// ResolvedURL returns URL with every "${VAR}" replaced, like
// Upstream.ResolvedEnv.
func (w Webhook) ResolvedURL() (string, error) {
	v, err := expand(w.URL, os.LookupEnv)
	if err != nil {
		return "", fmt.Errorf("approvals.webhook.url: %w", err)
	}
	return v, nil
}

// ResolvedHeaders returns Headers with every "${VAR}" replaced, like
// Upstream.ResolvedHeaders.
func (b PolicyBundle) ResolvedHeaders() (map[string]string, error) {
	return resolveMap(b.Headers, fieldPath{}.key("policy").key("bundle").key("headers"), os.LookupEnv)
}

// ResolvedSecret returns Secret with every "${VAR}" replaced, like
// Upstream.ResolvedEnv.
func (t AgentToken) ResolvedSecret() (string, error) {
	v, err := expand(t.Secret, os.LookupEnv)
	if err != nil {
		return "", fmt.Errorf("saga.agent_token.secret: %w", err)
	}
	return v, nil
}

func resolveMap(m map[string]string, p fieldPath, lookup func(string) (string, bool)) (map[string]string, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	var errs []error
	for _, k := range sortedKeys(m) {
		v, err := expand(m[k], lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.key(k), err))
			continue
		}
		out[k] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scanRefs walks s, calling lit for literal text and ref for each ${NAME}.
// "$$" is a literal "$"; a "$" followed by anything else than "{" or "$" is
// literal too.
func scanRefs(s string, lit func(string), ref func(string) error) error {
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			lit(s)
			return nil
		}
		lit(s[:i])
		switch s[i+1] {
		case '$':
			lit("$")
			s = s[i+2:]
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return fmt.Errorf("unterminated ${ in %q", s[i:])
			}
			name := s[i+2 : i+2+end]
			if !varName.MatchString(name) {
				return fmt.Errorf("${%s}: a reference holds only a variable name (letters, digits, _); write $$ for a literal $", name)
			}
			if err := ref(name); err != nil {
				return err
			}
			s = s[i+3+end:]
		default:
			lit("$")
			s = s[i+1:]
		}
	}
}

// checkRefs reports a malformed ${...} in s.
func checkRefs(s string) error {
	return scanRefs(s, func(string) {}, func(string) error { return nil })
}

// refs returns the variable names s refers to.
func refs(s string) []string {
	var names []string
	_ = scanRefs(s, func(string) {}, func(n string) error {
		names = append(names, n)
		return nil
	})
	return names
}

// expand replaces ${NAME} references in s. Every unset variable is named
// in the error.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	var missing []string
	err := scanRefs(s, func(t string) { b.WriteString(t) }, func(n string) error {
		v, ok := lookup(n)
		if !ok {
			missing = append(missing, n)
		}
		b.WriteString(v)
		return nil
	})
	if err != nil {
		return "", err
	}
	switch len(missing) {
	case 0:
		return b.String(), nil
	case 1:
		return "", fmt.Errorf("environment variable %s is not set", missing[0])
	}
	return "", fmt.Errorf("environment variables %s are not set", strings.Join(missing, ", "))
}
