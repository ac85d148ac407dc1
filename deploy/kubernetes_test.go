package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite kubernetes/agenthelm-policies.yaml from policies/")

const (
	k8sDir      = "kubernetes"
	k8sSchema   = "kubernetes/schema/kubernetes-subset.schema.json"
	k8sPolicies = "kubernetes/agenthelm-policies.yaml"
	// policiesConfigMap is the ConfigMap k8sPolicies holds.
	policiesConfigMap = "example-agent-policies"
)

// TestKubernetesManifests checks deploy/kubernetes without a cluster: every
// document against the JSON Schema of the Kubernetes subset it uses, then
// what a schema cannot see: references between objects, agenthelm's
// configuration in its ConfigMap (through the real loader) against the
// mounts, probes and environment, and the policies ConfigMap against
// policies/. With -update it first regenerates the policies ConfigMap.
func TestKubernetesManifests(t *testing.T) {
	c := newK8sChecker(t)
	if *update {
		if err := os.WriteFile(k8sPolicies, policiesConfigMapYAML(c.policies), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := loadManifests(t)
	kinds := map[string]int{}
	for _, o := range m {
		kinds[o.kind()]++
	}
	for _, want := range []string{"Deployment", "ConfigMap", "PersistentVolumeClaim"} {
		if kinds[want] == 0 {
			t.Errorf("deploy/kubernetes has no %s", want)
		}
	}
	for _, err := range c.check(m) {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(k8sDir, "README.md")); err != nil {
		t.Error(err)
	}
}

// TestKubernetesManifestsRejectBroken proves the check catches what it is
// for: each case breaks one thing in a copy of the manifests, and the check
// must name it.
func TestKubernetesManifestsRejectBroken(t *testing.T) {
	c := newK8sChecker(t)
	orig := loadManifests(t)
	const (
		deployment = "example-agent"
		configMap  = "example-agent-agenthelm"
	)
	sidecar := []any{"spec", "template", "spec", "initContainers", 0}
	agent := []any{"spec", "template", "spec", "containers", 0}
	podSpec := []any{"spec", "template", "spec"}
	in := func(base []any, rest ...any) []any { return append(slices.Clone(base), rest...) }
	// The edits a case makes.
	set := func(kind, name string, value any, p ...any) func(*testing.T, manifests) {
		return func(t *testing.T, m manifests) { setAt(t, m.find(t, kind, name).doc, value, p...) }
	}
	del := func(kind, name string, p ...any) func(*testing.T, manifests) {
		return func(t *testing.T, m manifests) { deleteAt(t, m.find(t, kind, name).doc, p...) }
	}
	editConfig := func(old, new string) func(*testing.T, manifests) {
		return func(t *testing.T, m manifests) {
			data := at(m.find(t, "ConfigMap", configMap).doc, "data").(map[string]any)
			s := data["agenthelm.yaml"].(string)
			if !strings.Contains(s, old) {
				t.Fatalf("agenthelm.yaml in ConfigMap %s has no %q to replace", configMap, old)
			}
			data["agenthelm.yaml"] = strings.Replace(s, old, new, 1)
		}
	}

	for _, tt := range []struct {
		name    string
		edit    func(*testing.T, manifests)
		wantErr string
	}{
		// The schema.
		{"image latest", set("Deployment", deployment, "agenthelm:latest", in(sidecar, "image")...), "/initContainers/0/image"},
		{"image without a tag", set("Deployment", deployment, "your-agent", in(agent, "image")...), "/containers/0/image"},
		{"image tag without a version", set("Deployment", deployment, "your-agent:stable", in(agent, "image")...), "/containers/0/image"},
		{"no resources.limits", del("Deployment", deployment, in(sidecar, "resources", "limits")...), "/initContainers/0/resources"},
		{"no memory limit", del("Deployment", deployment, in(agent, "resources", "limits", "memory")...), "/containers/0/resources/limits"},
		{"no readinessProbe", del("Deployment", deployment, in(agent, "readinessProbe")...), "readinessProbe"},
		{"no livenessProbe on the sidecar", del("Deployment", deployment, in(sidecar, "livenessProbe")...), "livenessProbe"},
		{"no startupProbe on the sidecar", del("Deployment", deployment, in(sidecar, "startupProbe")...), "startupProbe"},
		{"probe without a handler", del("Deployment", deployment, in(sidecar, "readinessProbe", "exec")...), "/initContainers/0/readinessProbe"},
		{"misspelt field", func(t *testing.T, m manifests) {
			c := at(m.find(t, "Deployment", deployment).doc, in(sidecar)...).(map[string]any)
			c["livenesProbe"] = c["livenessProbe"]
			delete(c, "livenessProbe")
		}, "livenesProbe"},
		{"no apiVersion", del("PersistentVolumeClaim", "example-agent-journal", "apiVersion"), "apiVersion"},
		{"no metadata.name", del("ConfigMap", configMap, "metadata", "name"), "/metadata"},
		{"no metadata", del("Deployment", deployment, "metadata"), "metadata"},
		{"unknown kind", set("PersistentVolumeClaim", "example-agent-journal", "PersistentVolumeClam", "kind"), "/kind"},
		{"runs as root", set("Deployment", deployment, false, in(podSpec, "securityContext", "runAsNonRoot")...), "runAsNonRoot"},
		{"writable root file system", set("Deployment", deployment, false, in(agent, "securityContext", "readOnlyRootFilesystem")...), "readOnlyRootFilesystem"},
		{"privilege escalation", set("Deployment", deployment, true, in(sidecar, "securityContext", "allowPrivilegeEscalation")...), "allowPrivilegeEscalation"},
		{"a volume with two sources", set("Deployment", deployment, map[string]any{}, in(podSpec, "volumes", 0, "emptyDir")...), "/volumes/0"},

		// References between objects.
		{"mount of an undeclared volume", set("Deployment", deployment, "jornal", in(sidecar, "volumeMounts", 0, "name")...), `volume "jornal", which the pod does not declare`},
		{"declared volume nobody mounts", func(t *testing.T, m manifests) {
			vols := at(m.find(t, "Deployment", deployment).doc, in(podSpec, "volumes")...).([]any)
			setAt(t, m.find(t, "Deployment", deployment).doc, append(vols, map[string]any{"name": "scratch", "emptyDir": map[string]any{}}), in(podSpec, "volumes")...)
		}, `volume "scratch" is mounted by no container`},
		{"ConfigMap key missing", set("Deployment", deployment, "agenthelm.yml", in(sidecar, "volumeMounts", 1, "subPath")...), `key "agenthelm.yml"`},
		{"ConfigMap missing", set("Deployment", deployment, "example-agent-policy", in(podSpec, "volumes", 2, "configMap", "name")...), `ConfigMap "example-agent-policy"`},
		{"PersistentVolumeClaim missing", set("Deployment", deployment, "journal", in(podSpec, "volumes", 0, "persistentVolumeClaim", "claimName")...), `PersistentVolumeClaim "journal"`},
		{"selector matches no pod", set("Deployment", deployment, "other", "spec", "selector", "matchLabels", "app.kubernetes.io/name"), "selector"},
		{"two pods on one journal", set("Deployment", deployment, 2, "spec", "replicas"), "replicas"},
		{"rolling update on one journal", set("Deployment", deployment, map[string]any{"type": "RollingUpdate"}, "spec", "strategy"), "Recreate"},

		// agenthelm's configuration against the pod.
		{"unknown config key", editConfig("journal:\n", "jornal: {}\njournal:\n"), "jornal"},
		{"config file not mounted", set("Deployment", deployment, "/etc/agenthelm/config.yaml", in(sidecar, "args", 2)...), "/etc/agenthelm/config.yaml"},
		{"admin on all interfaces", editConfig("admin: 127.0.0.1:7071", "admin: 0.0.0.0:7071"), "listen.admin"},
		{"MCP front door on all interfaces", editConfig("mcp: 127.0.0.1:7070", "mcp: 0.0.0.0:7070"), "listen.mcp"},
		{"probes on another port", editConfig("admin: 127.0.0.1:7071", "admin: 127.0.0.1:7072"), "http://127.0.0.1:7072/"},
		{"journal at the volume's root", editConfig("dir: /var/lib/agenthelm/journal", "dir: /var/lib/agenthelm"), "lost+found"},
		{"journal off the volume", editConfig("dir: /var/lib/agenthelm/journal", "dir: /tmp/journal"), "not on the persistent volume"},
		{"journal dir from the environment", func(t *testing.T, m manifests) {
			p := in(sidecar, "env")
			env := at(m.find(t, "Deployment", deployment).doc, p...).([]any)
			setAt(t, m.find(t, "Deployment", deployment).doc, append(env, map[string]any{"name": "AGENTHELM_DATA_DIR", "value": "/tmp/j"}), p...)
		}, "not on the persistent volume"},
		{"policy dir not mounted", editConfig("dir: /etc/agenthelm/policies", "dir: /etc/agenthelm/policy"), "policy.dir"},
		{"policies mounted with subPath", set("Deployment", deployment, "authz.rego", in(sidecar, "volumeMounts", 2, "subPath")...), "policy.dir"},
		{"admin token not from the Secret", editConfig("token_file: /run/secrets/agenthelm/token", "token_file: /var/lib/agenthelm/token"), "admin token"},
		{"policies out of date", func(t *testing.T, m manifests) {
			data := at(m.find(t, "ConfigMap", policiesConfigMap).doc, "data").(map[string]any)
			data["authz.rego"] = data["authz.rego"].(string) + "\n# edited in the ConfigMap only\n"
		}, "authz.rego differs from policies/authz.rego"},
		{"policy missing from the ConfigMap", del("ConfigMap", policiesConfigMap, "data", "data.json"), "data.json"},
		{"agent pointed past agenthelm", set("Deployment", deployment, "http://127.0.0.1:7071/mcp/hotel", in(agent, "env", 0, "value")...), "MCP_HOTEL_URL"},
		{"agent pointed at an unknown upstream", set("Deployment", deployment, "http://127.0.0.1:7070/mcp/hotels", in(agent, "env", 0, "value")...), "MCP_HOTEL_URL"},
		{"GOMEMLIMIT above the memory limit", set("Deployment", deployment, "300MiB", in(sidecar, "env", 0, "value")...), "GOMEMLIMIT"},
		{"grace shorter than shutdown_grace", set("Deployment", deployment, 5, in(podSpec, "terminationGracePeriodSeconds")...), "terminationGracePeriodSeconds"},
		{"agenthelm as a plain container", func(t *testing.T, m manifests) {
			d := m.find(t, "Deployment", deployment).doc
			side := at(d, in(sidecar)...).(map[string]any)
			delete(side, "restartPolicy")
			delete(side, "startupProbe")
			setAt(t, d, append(at(d, in(podSpec, "containers")...).([]any), side), in(podSpec, "containers")...)
			deleteAt(t, d, in(podSpec, "initContainers")...)
		}, "native sidecar"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := orig.clone(t)
			tt.edit(t, m)
			errs := c.check(m)
			var all []string
			for _, err := range errs {
				all = append(all, err.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.wantErr) {
				t.Errorf("check after %q: want an error containing %q, got %d:\n%s", tt.name, tt.wantErr, len(errs), strings.Join(all, "\n"))
			}
			t.Logf("%d errors:\n%s", len(errs), strings.Join(all, "\n"))
		})
	}
}

// --- loading ---------------------------------------------------------------

// k8sObject is one document of a manifest, as JSON holds it (numbers are
// json.Number).
type k8sObject struct {
	file string // relative to deploy/
	line int    // of the document's first line
	doc  map[string]any
}

func (o *k8sObject) kind() string { s, _ := o.doc["kind"].(string); return s }
func (o *k8sObject) name() string { s, _ := at(o.doc, "metadata", "name").(string); return s }
func (o *k8sObject) String() string {
	return fmt.Sprintf("%s:%d (%s %s)", o.file, o.line, o.kind(), o.name())
}

type manifests []*k8sObject

func (m manifests) find(t *testing.T, kind, name string) *k8sObject {
	t.Helper()
	for _, o := range m {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in deploy/kubernetes", kind, name)
	return nil
}

func (m manifests) clone(t *testing.T) manifests {
	t.Helper()
	out := make(manifests, len(m))
	for i, o := range m {
		doc, err := asJSON(o.doc)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &k8sObject{file: o.file, line: o.line, doc: doc}
	}
	return out
}

// loadManifests reads every document of deploy/kubernetes/*.yaml.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	var m manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range splitDocuments(string(data)) {
			var v any
			if err := yaml.Unmarshal([]byte(d.text), &v); err != nil {
				t.Fatalf("%s, document at line %d: %v", f, d.line, err)
			}
			if v == nil {
				continue // comments only
			}
			doc, err := asJSON(v)
			if err != nil {
				t.Fatalf("%s, document at line %d: %v", f, d.line, err)
			}
			m = append(m, &k8sObject{file: filepath.ToSlash(f), line: d.line, doc: doc})
		}
	}
	return m
}

type document struct {
	text string
	line int
}

// splitDocuments splits a multi-document YAML stream at its "---" lines.
// (goccy/go-yaml's decoder stops at a document that holds only comments,
// silently dropping the ones after it.)
func splitDocuments(s string) []document {
	var docs []document
	cur := document{line: 1}
	var b strings.Builder
	for i, line := range strings.SplitAfter(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "---"); ok {
			if rest = strings.TrimSpace(rest); rest == "" || strings.HasPrefix(rest, "#") {
				cur.text = b.String()
				docs = append(docs, cur)
				cur, b = document{line: i + 2}, strings.Builder{}
				continue
			}
		}
		b.WriteString(line)
	}
	cur.text = b.String()
	return append(docs, cur)
}

// asJSON turns a decoded YAML value into what the JSON Schema validator
// takes, and makes a deep copy.
func asJSON(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a document that is not a mapping: %s", raw)
	}
	return m, nil
}

// --- generic access to decoded documents -----------------------------------

// at returns the value at p (map keys and slice indexes), or nil.
func at(v any, p ...any) any {
	for _, k := range p {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, p ...any) string { s, _ := at(v, p...).(string); return s }

func list(v any, p ...any) []any { s, _ := at(v, p...).([]any); return s }

func object(v any, p ...any) map[string]any { m, _ := at(v, p...).(map[string]any); return m }

func integer(v any, p ...any) (int64, bool) {
	switch n := at(v, p...).(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	}
	return 0, false
}

func setAt(t *testing.T, root any, value any, p ...any) {
	t.Helper()
	parent := at(root, p[:len(p)-1]...)
	switch k := p[len(p)-1].(type) {
	case string:
		m, ok := parent.(map[string]any)
		if !ok {
			t.Fatalf("set %v: no mapping at %v", p, p[:len(p)-1])
		}
		m[k] = value
	case int:
		s, ok := parent.([]any)
		if !ok || k >= len(s) {
			t.Fatalf("set %v: no list of %d items at %v", p, k+1, p[:len(p)-1])
		}
		s[k] = value
	}
}

func deleteAt(t *testing.T, root any, p ...any) {
	t.Helper()
	m, ok := at(root, p[:len(p)-1]...).(map[string]any)
	k, _ := p[len(p)-1].(string)
	if _, exists := m[k]; !ok || !exists {
		t.Fatalf("delete %v: nothing there", p)
	}
	delete(m, k)
}

// --- the check -------------------------------------------------------------

type k8sChecker struct {
	schema *jsonschema.Schema
	// policies are the files of policies/ that the binary embeds (*.rego,
	// data.json), by name.
	policies map[string]string
}

func newK8sChecker(t *testing.T) *k8sChecker {
	t.Helper()
	// Parse reads AGENTHELM_* overrides from the environment: none here,
	// only what the manifests set.
	for _, v := range []string{config.EnvListenMCP, config.EnvListenHTTP, config.EnvListenAdmin, config.EnvDataDir, config.EnvLogLevel, config.EnvAdminToken} {
		t.Setenv(v, "")
	}
	raw, err := os.ReadFile(k8sSchema)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", k8sSchema, err)
	}
	comp := jsonschema.NewCompiler()
	if err := comp.AddResource(k8sSchema, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := comp.Compile(k8sSchema)
	if err != nil {
		t.Fatalf("compile %s: %v", k8sSchema, err)
	}
	c := &k8sChecker{schema: schema, policies: map[string]string{}}
	files, _ := filepath.Glob(filepath.Join(root, "policies", "*.rego"))
	files = append(files, filepath.Join(root, "policies", "data.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c.policies[filepath.Base(f)] = string(b)
	}
	return c
}

// check returns everything wrong with the manifests. It never panics on a
// malformed document: the schema reports those.
func (c *k8sChecker) check(m manifests) []error {
	var errs []error
	fail := func(o *k8sObject, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	seen := map[string]bool{}
	configMaps := map[string]*k8sObject{}
	pvcs := map[string]bool{}
	for _, o := range m {
		if err := c.schema.Validate(any(o.doc)); err != nil {
			fail(o, "does not match %s:\n%v", k8sSchema, err)
		}
		id := o.kind() + "/" + o.name()
		if seen[id] {
			fail(o, "a second %s", id)
		}
		seen[id] = true
		switch o.kind() {
		case "ConfigMap":
			configMaps[o.name()] = o
		case "PersistentVolumeClaim":
			pvcs[o.name()] = true
		}
	}
	sidecars := 0
	for _, o := range m {
		if o.kind() != "Deployment" {
			continue
		}
		p := &podCheck{o: o, fail: func(format string, args ...any) { fail(o, format, args...) }, configMaps: configMaps, pvcs: pvcs}
		p.references()
		for _, ctr := range p.containers {
			if isAgenthelm(ctr.c) {
				sidecars++
				c.agenthelm(p, ctr)
			}
		}
	}
	if sidecars != 1 {
		errs = append(errs, fmt.Errorf("deploy/kubernetes: %d agenthelm containers (image agenthelm:...), want 1", sidecars))
	}
	return errs
}

func isAgenthelm(c map[string]any) bool {
	image := str(c, "image")
	return strings.HasPrefix(image, "agenthelm:") || strings.Contains(image, "/agenthelm:")
}

// podCheck checks one Deployment's pod.
type podCheck struct {
	o          *k8sObject
	fail       func(format string, args ...any)
	configMaps map[string]*k8sObject
	pvcs       map[string]bool

	spec       map[string]any
	volumes    map[string]map[string]any
	containers []podContainer
}

type podContainer struct {
	where string // "initContainers[0] agenthelm"
	init  bool
	c     map[string]any
}

// references checks that every name the pod uses exists: volumes, the
// ConfigMaps, their keys and the claims they name, and that the Deployment
// runs one pod on a journal volume.
func (p *podCheck) references() {
	d := p.o.doc
	p.spec = object(d, "spec", "template", "spec")
	p.volumes = map[string]map[string]any{}
	for _, v := range list(p.spec, "volumes") {
		vm, _ := v.(map[string]any)
		name := str(vm, "name")
		if p.volumes[name] != nil {
			p.fail("two volumes named %q", name)
		}
		p.volumes[name] = vm
		if cm := str(vm, "configMap", "name"); cm != "" {
			if p.configMaps[cm] == nil {
				p.fail("volume %q names ConfigMap %q, which is not in deploy/kubernetes", name, cm)
			}
			for _, it := range list(vm, "configMap", "items") {
				p.configMapKey(cm, str(it, "key"), "volume "+name)
			}
		}
		if claim := str(vm, "persistentVolumeClaim", "claimName"); claim != "" && !p.pvcs[claim] {
			p.fail("volume %q names PersistentVolumeClaim %q, which is not in deploy/kubernetes", name, claim)
		}
	}
	for _, kind := range []string{"initContainers", "containers"} {
		for i, c := range list(p.spec, kind) {
			cm, _ := c.(map[string]any)
			p.containers = append(p.containers, podContainer{where: fmt.Sprintf("%s[%d] %s", kind, i, str(cm, "name")), init: kind == "initContainers", c: cm})
		}
	}
	mounted := map[string]bool{}
	names := map[string]bool{}
	usesClaim := false
	for _, ctr := range p.containers {
		if names[str(ctr.c, "name")] {
			p.fail("two containers named %q", str(ctr.c, "name"))
		}
		names[str(ctr.c, "name")] = true
		for _, vm := range list(ctr.c, "volumeMounts") {
			name := str(vm, "name")
			vol := p.volumes[name]
			if vol == nil {
				p.fail("%s mounts volume %q, which the pod does not declare", ctr.where, name)
				continue
			}
			mounted[name] = true
			usesClaim = usesClaim || vol["persistentVolumeClaim"] != nil
			if sub := str(vm, "subPath"); sub != "" && str(vol, "configMap", "name") != "" {
				p.configMapKey(str(vol, "configMap", "name"), keyForPath(vol["configMap"], sub), ctr.where+" subPath")
			}
		}
		for _, e := range list(ctr.c, "env") {
			if ref := object(e, "valueFrom", "configMapKeyRef"); ref != nil {
				p.configMapKey(str(ref, "name"), str(ref, "key"), ctr.where+" env "+str(e, "name"))
			}
		}
	}
	for name := range p.volumes {
		if !mounted[name] {
			p.fail("volume %q is mounted by no container", name)
		}
	}
	labels := object(d, "spec", "template", "metadata", "labels")
	for k, v := range object(d, "spec", "selector", "matchLabels") {
		if labels[k] != v {
			p.fail("spec.selector.matchLabels %s=%v does not match the pod template's labels %v", k, v, labels)
		}
	}
	if usesClaim {
		replicas, ok := integer(d, "spec", "replicas")
		if ok && replicas > 1 {
			p.fail("spec.replicas = %d with a PersistentVolumeClaim: one journal, one agenthelm (use a StatefulSet for more)", replicas)
		}
		if s := str(d, "spec", "strategy", "type"); s != "Recreate" {
			p.fail("spec.strategy.type = %q with a PersistentVolumeClaim: want Recreate, so that the old pod lets go of the journal before the new one opens it", s)
		}
	}
}

// keyForPath is the ConfigMap key a volume shows at path.
func keyForPath(vol any, p string) string {
	items := list(vol, "items")
	if len(items) == 0 {
		return p
	}
	for _, it := range items {
		if str(it, "path") == p {
			return str(it, "key")
		}
	}
	return p
}

// configMapKey returns the value of a ConfigMap key, reporting a missing
// ConfigMap or key.
func (p *podCheck) configMapKey(cm, key, who string) (string, bool) {
	o := p.configMaps[cm]
	if o == nil {
		p.fail("%s: no ConfigMap %q in deploy/kubernetes", who, cm)
		return "", false
	}
	v, ok := object(o.doc, "data")[key].(string)
	if !ok {
		p.fail("%s: ConfigMap %q has no key %q", who, cm, key)
	}
	return v, ok
}

// mountFor returns the volume mount of c whose file or directory holds
// file, and the path of file inside the volume.
func mountFor(c map[string]any, file string) (vm map[string]any, rel string) {
	for _, m := range list(c, "volumeMounts") {
		mp := str(m, "mountPath")
		if sub := str(m, "subPath"); sub != "" {
			if mp == file {
				return object(m), sub
			}
			continue
		}
		if r, ok := strings.CutPrefix(file, mp+"/"); ok {
			return object(m), r
		}
	}
	return nil, ""
}

// agenthelm checks the agenthelm container against its configuration.
func (c *k8sChecker) agenthelm(p *podCheck, ctr podContainer) {
	fail := func(format string, args ...any) { p.fail(ctr.where+": "+format, args...) }
	if !ctr.init || str(ctr.c, "restartPolicy") != "Always" {
		fail("agenthelm is not a native sidecar (an init container with restartPolicy: Always): the agent could start before it listens, and be left without it during shutdown")
	}

	// The configuration: serve --config FILE, FILE from a ConfigMap.
	args := list(ctr.c, "args")
	if len(args) != 3 || args[0] != "serve" || args[1] != "--config" {
		fail("args = %v, want [serve --config FILE]", args)
		return
	}
	file, _ := args[2].(string)
	vm, rel := mountFor(ctr.c, file)
	vol := p.volumes[str(vm, "name")]
	cmName := str(vol, "configMap", "name")
	if vm == nil || cmName == "" {
		fail("--config %s is not a file of a mounted ConfigMap", file)
		return
	}
	text, ok := p.configMapKey(cmName, keyForPath(vol["configMap"], rel), ctr.where+" --config")
	if !ok {
		return
	}
	cfg, err := config.Parse([]byte(text), fmt.Sprintf("ConfigMap %s key %s", cmName, keyForPath(vol["configMap"], rel)))
	if err != nil {
		fail("%v", err)
		return
	}
	env := map[string]string{}
	for _, e := range list(ctr.c, "env") {
		env[str(e, "name")] = str(e, "value")
	}
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err := cfg.Validate(); err != nil {
		fail("with the container's environment: %v", err)
		return
	}

	// Listeners on the pod's loopback only.
	for _, l := range []struct{ field, addr string }{{"listen.mcp", cfg.Listen.MCP}, {"listen.admin", cfg.Listen.Admin}} {
		host, _, err := net.SplitHostPort(l.addr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			fail("%s = %s: want a loopback address (the agent shares the pod's loopback; nothing else should reach agenthelm)", l.field, l.addr)
		}
	}

	// The probes ask the admin listener for health.
	admin := "http://" + cfg.Listen.Admin + "/"
	for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		cmd := list(ctr.c, probe, "exec", "command")
		var words []string
		for _, w := range cmd {
			s, _ := w.(string)
			words = append(words, s)
		}
		line := strings.Join(words, " ")
		if !strings.Contains(line, admin+"healthz") && !strings.Contains(line, admin+"readyz") {
			fail("%s runs %q, want an exec probe of %shealthz or %sreadyz (listen.admin is on loopback, out of the kubelet's reach)", probe, line, admin, admin)
		}
	}

	// The journal on the claim, in a directory of its own.
	dir := path.Clean(cfg.Journal.Dir)
	onClaim := false
	for _, m := range list(ctr.c, "volumeMounts") {
		if p.volumes[str(m, "name")]["persistentVolumeClaim"] == nil {
			continue
		}
		mp := path.Clean(str(m, "mountPath"))
		switch {
		case dir == mp:
			fail("journal.dir %s is the volume's root: use a directory below it (a fresh ext4 volume holds lost+found, and the journal wants an empty directory)", dir)
			onClaim = true
		case strings.HasPrefix(dir, mp+"/"):
			onClaim = true
		}
	}
	if !onClaim {
		fail("journal.dir %s is not on the persistent volume: the journal would not survive the pod", dir)
	}

	// The policy directory is a ConfigMap mounted whole, so that edits
	// reach agenthelm (a subPath mount never changes), and it holds the
	// shipped policies.
	policyMount := ""
	for _, m := range list(ctr.c, "volumeMounts") {
		if path.Clean(str(m, "mountPath")) == path.Clean(cfg.Policy.Dir) && str(m, "subPath") == "" {
			policyMount = str(p.volumes[str(m, "name")], "configMap", "name")
		}
	}
	if policyMount == "" {
		fail("policy.dir %s is not a ConfigMap mounted as a directory (without subPath)", cfg.Policy.Dir)
	} else if o := p.configMaps[policyMount]; o != nil {
		c.comparePolicies(p, o)
	}

	// The admin token comes from a Secret.
	fromSecret := false
	if f := cfg.Admin.TokenFile; f != "" {
		vm, rel := mountFor(ctr.c, f)
		vol := p.volumes[str(vm, "name")]
		if s := vol["secret"]; s != nil {
			fromSecret = true
			// The Secret itself is created outside these files; its items
			// say which file the volume shows.
			items := list(s, "items")
			if len(items) > 0 && !slices.ContainsFunc(items, func(it any) bool { return str(it, "path") == rel }) {
				fail("admin.token_file %s: the Secret volume %q shows no %s", f, str(vm, "name"), rel)
			}
		}
	}
	for _, e := range list(ctr.c, "env") {
		if str(e, "name") == config.EnvAdminToken && object(e, "valueFrom", "secretKeyRef") != nil {
			fromSecret = true
		}
	}
	if !fromSecret {
		fail("the admin token is not read from a Secret (admin.token_file on a Secret volume, or %s from a secretKeyRef)", config.EnvAdminToken)
	}

	// Shutdown: the pod's grace covers agenthelm's own.
	grace := int64(30)
	if g, ok := integer(p.spec, "terminationGracePeriodSeconds"); ok {
		grace = g
	}
	if time.Duration(grace)*time.Second <= time.Duration(cfg.Limits.ShutdownGrace) {
		fail("terminationGracePeriodSeconds %d does not leave room for limits.shutdown_grace %s and the journal's flush", grace, time.Duration(cfg.Limits.ShutdownGrace))
	}

	// GOMEMLIMIT below the memory limit.
	if v, ok := env["GOMEMLIMIT"]; ok {
		limit, lerr := memoryQuantity(str(ctr.c, "resources", "limits", "memory"))
		soft, serr := goMemLimit(v)
		if lerr != nil || serr != nil || soft >= limit {
			fail("GOMEMLIMIT %s is not below resources.limits.memory %s (%v, %v)", v, str(ctr.c, "resources", "limits", "memory"), serr, lerr)
		}
	}

	// The other containers reach their tools through agenthelm's MCP front
	// door, at an upstream it has.
	loopback := regexp.MustCompile(`^https?://(127\.0\.0\.1|localhost|\[::1\])[:/]`)
	for _, other := range p.containers {
		if isAgenthelm(other.c) {
			continue
		}
		for _, e := range list(other.c, "env") {
			v := str(e, "value")
			if !loopback.MatchString(v) {
				continue
			}
			up, ok := strings.CutPrefix(v, "http://"+cfg.Listen.MCP+"/mcp/")
			if _, known := cfg.Upstreams[up]; !ok || !known {
				fail("%s env %s = %s: want http://%s/mcp/UPSTREAM with UPSTREAM one of %v", other.where, str(e, "name"), v, cfg.Listen.MCP, cfg.UpstreamNames())
			}
		}
	}
}

// comparePolicies checks that a policies ConfigMap holds exactly the
// shipped policies.
func (c *k8sChecker) comparePolicies(p *podCheck, o *k8sObject) {
	data := object(o.doc, "data")
	const fix = "regenerate it: go test ./deploy -run TestKubernetesManifests -update"
	for name, want := range c.policies {
		got, ok := data[name].(string)
		switch {
		case !ok:
			p.fail("ConfigMap %s has no %s, which policies/ has; %s", o.name(), name, fix)
		case got != want:
			p.fail("ConfigMap %s: %s differs from policies/%s; %s", o.name(), name, name, fix)
		}
	}
	for name := range data {
		if _, ok := c.policies[name]; !ok {
			p.fail("ConfigMap %s has %s, which policies/ does not; %s", o.name(), name, fix)
		}
	}
}

// policiesConfigMapYAML renders the policies ConfigMap: each file as a
// literal block, byte for byte.
func policiesConfigMapYAML(files map[string]string) []byte {
	var b strings.Builder
	b.WriteString(`# Generated from policies/ by
#   go test ./deploy -run TestKubernetesManifests -update
# Do not edit here: deploy/kubernetes_test.go fails when this differs from
# policies/. The shipped Rego policies, their tests and data.json, which
# agenthelm-sidecar.yaml mounts at policy.dir. In your cluster, edit your
# copy: agenthelm reloads the directory when the ConfigMap changes, once the
# policy tests pass (policy.test_on_reload).
apiVersion: v1
kind: ConfigMap
metadata:
  name: ` + policiesConfigMap + `
  labels:
    app.kubernetes.io/name: example-agent
    app.kubernetes.io/component: agenthelm
data:
`)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		content := files[name]
		chomp := "" // one final line break
		switch {
		case !strings.HasSuffix(content, "\n"):
			chomp = "-"
		case strings.HasSuffix(content, "\n\n"):
			chomp = "+"
		}
		indent := ""
		if strings.HasPrefix(content, " ") || strings.HasPrefix(content, "\n") {
			indent = "4"
		}
		fmt.Fprintf(&b, "  %s: |%s%s\n", name, indent, chomp)
		for _, line := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
			if line != "" {
				b.WriteString("    " + line)
			}
			b.WriteString("\n")
		}
	}
	return []byte(b.String())
}

// --- quantities ------------------------------------------------------------

var quantityRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)

// memoryQuantity is a Kubernetes memory quantity in bytes.
func memoryQuantity(s string) (float64, error) {
	m := quantityRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("memory quantity %q", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]
	return n * mult, nil
}

var goMemLimitRe = regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`)

// goMemLimit is a GOMEMLIMIT value in bytes.
func goMemLimit(s string) (float64, error) {
	m := goMemLimitRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("GOMEMLIMIT %q", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	return n * mult, nil
}
