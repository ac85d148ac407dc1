package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const docsPath = "../docs/CONFIG.md"

// leafTypes are written as one YAML value, not walked into.
var leafTypes = map[reflect.Type]bool{
	reflect.TypeFor[Duration](): true,
	reflect.TypeFor[ByteSize](): true,
	reflect.TypeFor[Expr]():     true,
}

// yamlKeyPaths lists every key of t as docs/CONFIG.md writes it:
// upstreams.<name>.tools.<tool>.retry.attempts, routes[].compensate.path.
func yamlKeyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name := yamlName(f)
		if name == "" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out = append(out, p)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if leafTypes[ft] {
			continue
		}
		switch ft.Kind() {
		case reflect.Struct:
			out = append(out, yamlKeyPaths(ft, p)...)
		case reflect.Map:
			if et := ft.Elem(); et.Kind() == reflect.Struct && !leafTypes[et] {
				placeholder := map[string]string{"upstreams": "<name>", "tools": "<tool>"}[name]
				if placeholder == "" {
					placeholder = "<key>"
				}
				out = append(out, yamlKeyPaths(et, p+"."+placeholder)...)
			}
		case reflect.Slice:
			if et := ft.Elem(); et.Kind() == reflect.Struct && !leafTypes[et] {
				out = append(out, yamlKeyPaths(et, p+"[]")...)
			}
		}
	}
	return out
}

func readDocs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(docsPath))
	if err != nil {
		t.Fatalf("read %s: %v", docsPath, err)
	}
	return string(b)
}

func TestDocsDescribeEveryKey(t *testing.T) {
	docs := readDocs(t)
	paths := yamlKeyPaths(reflect.TypeFor[Config](), "")
	if len(paths) < 80 {
		t.Fatalf("found only %d keys: the walk is broken", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(docs, "`"+p+"`") {
			t.Errorf("%s does not describe `%s`", docsPath, p)
		}
	}
}

func TestDocsDescribeEveryEnvironmentVariable(t *testing.T) {
	docs := readDocs(t)
	for _, o := range envOverrides {
		if !strings.Contains(docs, "`"+o.name+"`") {
			t.Errorf("%s does not describe `%s`", docsPath, o.name)
		}
	}
	for _, v := range otelEndpointVars {
		if !strings.Contains(docs, "`"+v+"`") {
			t.Errorf("%s does not describe `%s`", docsPath, v)
		}
	}
}

// The defaults block in the docs is exactly what Default().Marshal()
// writes, so the documented defaults cannot drift from the code.
func TestDocsDefaultsBlock(t *testing.T) {
	docs := readDocs(t)
	const start, end = "<!-- defaults:begin -->\n```yaml\n", "```\n<!-- defaults:end -->"
	i := strings.Index(docs, start)
	j := strings.Index(docs, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no defaults block between %q and %q", docsPath, start, end)
	}
	got := docs[i+len(start) : j]
	want, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the defaults block in %s differs from Default().Marshal(); replace it with:\n%s", docsPath, want)
	}
}
