package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/config"
	"github.com/goccy/go-yaml"
)

// root is the repository root, relative to this package.
const root = ".."

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// pinned reports whether an image reference names a version: a tag with a
// digit that is not "latest", or a digest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndexByte(image, ':')
	if i < 0 || strings.Contains(image[i:], "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "latest" && strings.ContainsAny(tag, "0123456789")
}

// TestCompose checks docker-compose.yml without a Docker engine: the
// services the issue asks for, pinned images or a build, health checks,
// ports published on loopback only, and every file, secret, volume and
// dependency it refers to.
func TestCompose(t *testing.T) {
	c := loadCompose(t)
	for _, want := range []string{"agenthelm", "hotel", "payments", "email", "jaeger", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("docker-compose.yml has no service %q", want)
		}
	}
	for name, s := range c.Services {
		switch {
		case s.Build != nil:
			df := filepath.Join(root, s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s: build: %v", name, err)
			}
		case !pinned(s.Image):
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] == "NONE" {
			t.Errorf("service %s: no health check", name)
		} else if s.Healthcheck.Interval == "" || s.Healthcheck.Retries == 0 {
			t.Errorf("service %s: health check without interval or retries: %+v", name, *s.Healthcheck)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") || strings.Count(p, ":") != 2 {
				t.Errorf("service %s: port %q is not published on 127.0.0.1 only (want 127.0.0.1:HOST:CONTAINER)", name, p)
			}
		}
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				t.Errorf("service %s: volume %q has no target", name, v)
				continue
			}
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s: volume %q is not declared under volumes", name, src)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("service %s: secret %q is not declared under secrets", name, sec)
			}
		}
		for dep, d := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %q", name, dep)
			}
			if d.Condition == "service_healthy" && c.Services[dep].Healthcheck == nil {
				t.Errorf("service %s waits for %s to be healthy, which has no health check", name, dep)
			}
		}
	}
	for name, sec := range c.Secrets {
		if _, err := os.Stat(filepath.Join(root, sec.File)); err != nil {
			t.Errorf("secret %s: %v", name, err)
		}
	}
}

// TestDockerfile: base images are pinned, and the Go image is at least the
// go directive of go.mod.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(string(gomod))
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(df), -1)
	if len(froms) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	sawGo := false
	for _, m := range froms {
		if !pinned(m[1]) {
			t.Errorf("Dockerfile: FROM %s is not pinned", m[1])
		}
		if v, ok := strings.CutPrefix(m[1], "golang:"); ok {
			sawGo = true
			got := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(v)
			if got == nil || atoi(got[1])*1000+atoi(got[2]) < atoi(want[1])*1000+atoi(want[2]) {
				t.Errorf("Dockerfile: FROM %s is older than go.mod's go %s.%s", m[1], want[1], want[2])
			}
		}
	}
	if !sawGo {
		t.Error("Dockerfile does not build with a golang image")
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil || !strings.Contains(string(ignore), ".git") {
		t.Errorf(".dockerignore missing or does not leave out .git: %v", err)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestAgenthelmConfig: the sidecar's compose configuration passes the real
// config loader, and its addresses are the compose services' and ports.
func TestAgenthelmConfig(t *testing.T) {
	c := loadCompose(t)
	cfg, err := config.Load(filepath.Join("agenthelm", "agenthelm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Telemetry.Exporter != config.ExporterOTLP || cfg.Telemetry.OTLPEndpoint != "http://jaeger:4318" {
		t.Errorf("telemetry = %+v, want otlp to http://jaeger:4318", cfg.Telemetry)
	}
	published := func(service, containerPort string) bool {
		for _, p := range c.Services[service].Ports {
			if strings.HasSuffix(p, ":"+containerPort) {
				return true
			}
		}
		return false
	}
	for listener, addr := range map[string]string{"mcp": cfg.Listen.MCP, "admin": cfg.Listen.Admin} {
		_, port, _ := strings.Cut(addr, ":")
		if !strings.HasPrefix(addr, "0.0.0.0:") || !published("agenthelm", port) {
			t.Errorf("listen.%s = %s: want 0.0.0.0:PORT inside the container, PORT published by the agenthelm service", listener, addr)
		}
	}
	if !slices.Contains(c.Services["agenthelm"].Secrets, "admin_token") || cfg.Admin.TokenFile != "/run/secrets/admin_token" {
		t.Errorf("admin.token_file = %q, want the compose secret /run/secrets/admin_token", cfg.Admin.TokenFile)
	}
	for _, name := range []string{"hotel", "payments", "email"} {
		up, ok := cfg.Upstreams[name]
		if !ok {
			t.Errorf("upstream %s missing", name)
			continue
		}
		s := c.Services[name]
		args := strings.Join(s.Command, " ")
		m := regexp.MustCompile(`--listen 0\.0\.0\.0:(\d+)`).FindStringSubmatch(args)
		if m == nil || up.URL != "http://"+name+":"+m[1]+"/mcp" {
			t.Errorf("upstream %s url %s does not match service %s (%s)", name, up.URL, name, args)
		}
	}
}

// TestPrometheusConfig: Prometheus scrapes agenthelm's admin listener with
// the shared token.
func TestPrometheusConfig(t *testing.T) {
	c := loadCompose(t)
	data, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			Authorization struct {
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join("agenthelm", "agenthelm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, adminPort, _ := strings.Cut(cfg.Listen.Admin, ":")
	found := false
	for _, sc := range p.ScrapeConfigs {
		if sc.JobName != "agenthelm" {
			continue
		}
		found = true
		if sc.MetricsPath != "/metrics" || len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{"agenthelm:" + adminPort}) {
			t.Errorf("agenthelm job = %+v, want /metrics on agenthelm:%s", sc, adminPort)
		}
		if sc.Authorization.CredentialsFile != "/run/secrets/admin_token" || !slices.Contains(c.Services["prometheus"].Secrets, "admin_token") {
			t.Errorf("agenthelm job credentials %q: want the admin_token secret, mounted in the prometheus service", sc.Authorization.CredentialsFile)
		}
	}
	if !found {
		t.Error("prometheus.yml has no agenthelm job")
	}
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string     `json:"name"`
			Datasource datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		Datasource datasource `json:"datasource"`
		Expr       string     `json:"expr"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestGrafanaProvisioning: the data sources and the dashboard provider
// parse, the dashboard is valid JSON whose data sources are the provisioned
// ones, it has the panels the issue lists, it queries only the metrics
// telemetry/doc.go documents, and every variable the provisioning files
// read is set for the grafana service.
func TestGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	prov := filepath.Join("grafana", "provisioning")
	data, err := os.ReadFile(filepath.Join(prov, "datasources", "datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(data, &ds); err != nil || ds.APIVersion != 1 || len(ds.Datasources) == 0 {
		t.Fatalf("datasources.yaml = %+v, %v", ds, err)
	}
	uids := map[string]string{} // uid -> type
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
	}
	var providers struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	data, err = os.ReadFile(filepath.Join(prov, "dashboards", "dashboards.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &providers); err != nil || len(providers.Providers) != 1 ||
		providers.Providers[0].Options.Path != "${GF_PATHS_PROVISIONING}/dashboards" {
		t.Errorf("dashboards.yaml = %+v, %v: want one file provider on ${GF_PATHS_PROVISIONING}/dashboards", providers, err)
	}

	// Variables the provisioning reads must be set for the container
	// (GF_PATHS_PROVISIONING is set by the Grafana image).
	env := c.Services["grafana"].Environment
	for _, f := range []string{filepath.Join(prov, "datasources", "datasources.yaml"), filepath.Join(prov, "dashboards", "dashboards.yaml")} {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllStringSubmatch(string(b), -1) {
			if _, ok := env[m[1]]; !ok && m[1] != "GF_PATHS_PROVISIONING" {
				t.Errorf("%s reads ${%s}, which the grafana service does not set", f, m[1])
			}
		}
	}
	for _, v := range c.Services["grafana"].Volumes {
		if strings.HasPrefix(v, "./deploy/grafana/provisioning:") && !strings.HasPrefix(strings.TrimPrefix(v, "./deploy/grafana/provisioning:"), "/etc/grafana/provisioning") {
			t.Errorf("grafana mounts the provisioning at %q, want /etc/grafana/provisioning", v)
		}
	}

	files, _ := filepath.Glob(filepath.Join(prov, "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboard JSON")
	}
	doc, docErr := os.ReadFile(filepath.Join(root, "telemetry", "doc.go"))
	// Metric names: what is left of a query without its label matchers
	// and by/without clauses.
	labelsRe := regexp.MustCompile(`\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)`)
	metricRe := regexp.MustCompile(`\b((?:agenthelm|mcp)_[a-z_]+?)(?:_bucket|_sum|_count)?\b`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", f)
		}
		check := func(where string, ref datasource) {
			if ref.UID == "" {
				return
			}
			typ, ok := uids[ref.UID]
			if !ok || typ != ref.Type {
				t.Errorf("%s: %s uses data source %+v, not a provisioned one (%v)", f, where, ref, uids)
			}
		}
		var titles []string
		for _, v := range d.Templating.List {
			check("variable "+v.Name, v.Datasource)
		}
		for _, p := range d.Panels {
			titles = append(titles, strings.ToLower(p.Title))
			check("panel "+p.Title, p.Datasource)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				check("a query of panel "+p.Title, tg.Datasource)
				if docErr != nil {
					continue
				}
				for _, m := range metricRe.FindAllStringSubmatch(labelsRe.ReplaceAllString(tg.Expr, ""), -1) {
					if !strings.Contains(string(doc), m[1]) {
						t.Errorf("%s: panel %q queries %s, which telemetry/doc.go does not document", f, p.Title, m[1])
					}
				}
			}
		}
		all := strings.Join(titles, "|")
		for _, want := range []string{"calls", "error", "p50", "p99", "policy", "pending approvals", "rollback", "stuck"} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: no panel about %q (titles: %s)", f, want, all)
			}
		}
	}
	if docErr != nil {
		t.Logf("telemetry/doc.go not found: metric names not checked (%v)", docErr)
	}
}

// TestScripts: the shell scripts parse and are executable.
func TestScripts(t *testing.T) {
	scripts := []string{"native/run.sh", "native/stop.sh", "jaeger/build.sh"}
	bash, err := exec.LookPath("bash")
	for _, s := range scripts {
		fi, serr := os.Stat(s)
		if serr != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: missing or not executable (%v)", s, serr)
		}
		if err != nil {
			continue
		}
		if out, err := exec.Command(bash, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}
