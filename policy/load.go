package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"
)

// DecisionQuery is the query the engine evaluates for every call.
const DecisionQuery = "data.agenthelm.authz.decision"

// LoadErrorsQuery is evaluated once per revision, with the data and no
// input, if the policy defines it: a non-empty set (or array) of messages
// rejects the revision, as a compile error does. Policies use it to check
// their settings once instead of on every call.
const LoadErrorsQuery = "data.agenthelm.authz.load_errors"

var (
	decisionRef   = ast.MustParseRef(DecisionQuery)
	loadErrorsRef = ast.MustParseRef(LoadErrorsQuery)
)

var (
	// ErrNoDecisionRule: the policy files define no rule at DecisionQuery.
	ErrNoDecisionRule = errors.New("no rule `decision` in package agenthelm.authz")
	// ErrLoadErrors: the policy's own load checks (LoadErrorsQuery) failed.
	ErrLoadErrors = errors.New("policy load_errors")
)

// source is one file of a policy directory, read once: what is hashed is
// exactly what is compiled.
type source struct {
	rel  string // slash-separated, relative to the directory
	path string // as shown in messages: the directory joined with rel
	data []byte
}

// snapshot is a policy directory as read at one moment.
type snapshot struct {
	dir      string
	policies []source // *.rego except *_test.rego
	tests    []source // *_test.rego
	data     []source // data.json, data.yaml, data.yml
}

// readDir reads the policy files under dir: *.rego files, and data.json,
// data.yaml or data.yml files, whose content is placed under data at the
// path of their directory (OPA's bundle convention: a/b/data.json is
// data.a.b). Hidden files and directories (a leading dot: editor swap
// files, .git, the ..data links of a Kubernetes ConfigMap) and every other
// file are ignored.
func readDir(dir string) (*snapshot, error) {
	snap := &snapshot{dir: dir}
	root := walkRoot(dir)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if path != root && hidden(name) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		var list *[]source
		switch {
		case strings.HasSuffix(name, "_test.rego"):
			list = &snap.tests
		case strings.HasSuffix(name, ".rego"):
			list = &snap.policies
		case name == "data.json" || name == "data.yaml" || name == "data.yml":
			list = &snap.data
		default:
			return nil
		}
		b, err := os.ReadFile(path) // follows symlinks, as ConfigMap mounts need
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		*list = append(*list, source{rel: filepath.ToSlash(rel), path: path, data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policy directory: %w", err)
	}
	return snap, nil
}

// hidden reports whether a file or directory name is hidden (a leading dot).
func hidden(name string) bool { return strings.HasPrefix(name, ".") && name != "." && name != ".." }

// walkRoot is dir as filepath.WalkDir must be given it to descend into it
// even when dir is a symbolic link to a directory.
func walkRoot(dir string) string {
	if strings.HasSuffix(dir, string(filepath.Separator)) {
		return dir
	}
	return dir + string(filepath.Separator)
}

// revision hashes the deciding files (policies and data, not tests): the
// first 16 hex digits of SHA-256 over, for each file in path order, its
// slash-separated relative path, a NUL, its length in decimal, a NUL, and
// its content.
func (s *snapshot) revision() string {
	files := append(slices.Clone(s.policies), s.data...)
	slices.SortFunc(files, func(a, b source) int { return strings.Compare(a.rel, b.rel) })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.rel, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// files lists the deciding files, relative to the directory.
func (s *snapshot) files() []string {
	var out []string
	for _, f := range append(slices.Clone(s.policies), s.data...) {
		out = append(out, f.rel)
	}
	slices.Sort(out)
	return out
}

// modules parses the policies, and the tests too if withTests.
func (s *snapshot) modules(withTests bool) (map[string]*ast.Module, error) {
	srcs := s.policies
	if withTests {
		srcs = append(slices.Clone(srcs), s.tests...)
	}
	mods := make(map[string]*ast.Module, len(srcs))
	var errs ast.Errors
	for _, f := range srcs {
		m, err := ast.ParseModuleWithOpts(f.path, string(f.data), ast.ParserOptions{
			RegoVersion:       ast.RegoV1,
			ProcessAnnotation: true,
		})
		if err != nil {
			var aerrs ast.Errors
			if errors.As(err, &aerrs) {
				errs = append(errs, aerrs...)
				continue
			}
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		mods[f.path] = m
	}
	if len(errs) > 0 {
		return nil, &LoadError{Errors: errs}
	}
	return mods, nil
}

// document merges the data files into one data document.
func (s *snapshot) document() (map[string]any, error) {
	root := map[string]any{}
	data := slices.Clone(s.data)
	slices.SortFunc(data, func(a, b source) int { return strings.Compare(a.rel, b.rel) })
	for _, f := range data {
		var v any
		var err error
		if strings.HasSuffix(f.rel, ".json") {
			err = util.UnmarshalJSON(f.data, &v)
		} else {
			err = util.Unmarshal(f.data, &v) // YAML (or JSON, a subset)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: the document must be an object", f.path)
		}
		var prefix []string
		if d := filepath.ToSlash(filepath.Dir(f.rel)); d != "." {
			prefix = strings.Split(d, "/")
		}
		if err := mergeData(root, obj, prefix); err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
	}
	return root, nil
}

// mergeData merges obj into root at prefix. Objects merge key by key; any
// other value may be defined only once.
func mergeData(root, obj map[string]any, prefix []string) error {
	at := root
	for i, k := range prefix {
		next, ok := at[k]
		if !ok {
			m := map[string]any{}
			at[k] = m
			at = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("conflicting values at data.%s", strings.Join(prefix[:i+1], "."))
		}
		at = m
	}
	for k, v := range obj {
		path := append(slices.Clip(prefix), k)
		old, ok := at[k]
		if !ok {
			at[k] = v
			continue
		}
		_, oldIsObject := old.(map[string]any)
		nm, newIsObject := v.(map[string]any)
		if !oldIsObject || !newIsObject {
			return fmt.Errorf("conflicting values at data.%s", strings.Join(path, "."))
		}
		if err := mergeData(root, nm, path); err != nil {
			return err
		}
	}
	return nil
}

// LoadError is a policy that does not parse or compile. Each entry has a
// location (file:line:col) and OPA's message.
type LoadError struct {
	Errors ast.Errors
}

func (e *LoadError) Error() string {
	var b strings.Builder
	if len(e.Errors) == 1 {
		b.WriteString("policy error: ")
	} else {
		fmt.Fprintf(&b, "%d policy errors:", len(e.Errors))
	}
	for _, ae := range e.Errors {
		if len(e.Errors) > 1 {
			b.WriteString("\n  ")
		}
		if l := ae.Location; l != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", l.File, l.Row, l.Col)
		}
		fmt.Fprintf(&b, "%s: %s", ae.Code, ae.Message)
	}
	return b.String()
}

// revision is one compiled policy version. Immutable once built.
type revision struct {
	id       string
	files    []string
	loadedAt time.Time
	query    rego.PreparedEvalQuery
	compiler *ast.Compiler
	static   staticValues // values of the rules that depend only on data
	tools    *toolCache   // values of the rules that depend only on data and the tool, by tool
}

// compileOptions are the settings every compile of a policy shares.
type compileOptions struct {
	printHook print.Hook // nil: print() statements are dropped
}

// build parses, compiles and prepares the decision query for a snapshot.
func build(ctx context.Context, snap *snapshot, opts compileOptions) (*revision, error) {
	mods, err := snap.modules(false)
	if err != nil {
		return nil, err
	}
	doc, err := snap.document()
	if err != nil {
		return nil, err
	}
	store := inmem.NewFromObjectWithOpts(doc, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))

	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(opts.printHook != nil)
	compiler.Compile(mods)
	if compiler.Failed() {
		return nil, &LoadError{Errors: compiler.Errors}
	}
	if len(compiler.GetRulesForVirtualDocument(decisionRef)) == 0 && len(compiler.GetRulesWithPrefix(decisionRef)) == 0 {
		return nil, fmt.Errorf("%w (files: %s)", ErrNoDecisionRule, strings.Join(snap.files(), ", "))
	}

	ropts := []func(*rego.Rego){
		rego.Query(DecisionQuery),
		rego.Compiler(compiler),
		rego.Store(store),
		// A built-in that fails (a regex that does not compile, a type
		// error) is an evaluation error and so a deny, never a silently
		// undefined expression that could skip a deny rule.
		rego.StrictBuiltinErrors(true),
	}
	if opts.printHook != nil {
		ropts = append(ropts, rego.EnablePrintStatements(true), rego.PrintHook(opts.printHook))
	}
	pq, err := rego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		var aerrs ast.Errors
		if errors.As(err, &aerrs) {
			return nil, &LoadError{Errors: aerrs}
		}
		return nil, fmt.Errorf("prepare %s: %w", DecisionQuery, err)
	}
	if len(compiler.GetRulesForVirtualDocument(loadErrorsRef)) > 0 {
		if err := checkLoadErrors(ctx, compiler, store); err != nil {
			return nil, err
		}
	}
	static, tool := cacheableRules(compiler, decisionRef)
	return &revision{
		id:       snap.revision(),
		files:    snap.files(),
		loadedAt: time.Now(),
		query:    pq,
		compiler: compiler,
		static:   evalStatic(ctx, compiler, store, static),
		tools:    newToolCache(tool),
	}, nil
}

// checkLoadErrors evaluates LoadErrorsQuery without input.
func checkLoadErrors(ctx context.Context, compiler *ast.Compiler, store storage.Store) error {
	rs, err := rego.New(
		rego.Query(LoadErrorsQuery),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
	).Eval(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLoadErrors, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil // undefined: nothing to report
	}
	list, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return fmt.Errorf("%w: want a set of messages, got %s", ErrLoadErrors, jsonType(rs[0].Expressions[0].Value))
	}
	if len(list) == 0 {
		return nil
	}
	msgs := make([]string, len(list))
	for i, m := range list {
		if s, ok := m.(string); ok {
			msgs[i] = s
		} else {
			b, _ := json.Marshal(m)
			msgs[i] = string(b)
		}
	}
	slices.Sort(msgs)
	return fmt.Errorf("%w:\n  %s", ErrLoadErrors, strings.Join(msgs, "\n  "))
}

// hasDefaultDecision reports whether the policy has a `default decision`.
func (r *revision) hasDefaultDecision() bool {
	for _, rule := range r.compiler.GetRulesForVirtualDocument(decisionRef) {
		if rule.Default {
			return true
		}
	}
	return false
}
