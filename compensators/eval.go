package compensators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/itchyny/gojq"
)

// ErrCannotUndo marks an evaluation that stopped because the step cannot be
// undone, as an expression says with error({cannot_undo: "reason"}). The
// packs use it, for example, for a file that write_file created: the
// filesystem server has no tool to delete it. Eval's error wraps it, so a
// caller can tell it from a broken expression with errors.Is.
var ErrCannotUndo = errors.New("cannot be undone")

// evalTimeout bounds one evaluation, so that a runaway expression
// (def f: f; f) cannot hang a capture or an unwinding.
const evalTimeout = time.Second

// maxCached bounds the compiled-program cache. Expressions come from the
// configuration, the packs and the journal, so the bound is only a safety
// net: when it is reached the cache starts over.
const maxCached = 1024

var cache = struct {
	sync.RWMutex
	progs map[string]compiled
}{progs: map[string]compiled{}}

type compiled struct {
	code *gojq.Code
	err  error
}

// compile returns the program for src from the cache, compiling it on
// first use. Compile errors are cached too.
func compile(src string) (*gojq.Code, error) {
	cache.RLock()
	c, ok := cache.progs[src]
	cache.RUnlock()
	if ok {
		return c.code, c.err
	}
	c.code, c.err = compileJQ(src)
	cache.Lock()
	if len(cache.progs) >= maxCached {
		cache.progs = map[string]compiled{}
	}
	cache.progs[src] = c
	cache.Unlock()
	return c.code, c.err
}

// compileJQ parses and compiles src. Programs get no environment ($ENV and
// env are empty) and no input iterator, so an expression can neither copy a
// secret into the journal nor read anything but its input.
func compileJQ(src string) (*gojq.Code, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("jq parse error: %w", err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("jq compile error: %w", err)
	}
	return code, nil
}

// Eval runs the jq expression expr over the document
//
//	{args, result, capture, result_json, capture_json}
//
// and returns its output, which must be exactly one JSON object. args is
// the forward call's arguments, result its MCP result object and capture
// the capture call's result object (each may be nil). result_json and
// capture_json are the first text content item of result and capture
// parsed as JSON, when it parses (server-memory, for one, returns its JSON
// as text); null otherwise. An empty expression yields {}.
//
// Numbers keep their precision (large integer ids survive). Evaluation
// stops after one second. Compiled programs are cached. Eval has the
// signature of engine.Evaluator.
func Eval(expr string, args, result, capture json.RawMessage) (json.RawMessage, error) {
	if strings.TrimSpace(expr) == "" {
		return json.RawMessage("{}"), nil
	}
	code, err := compile(expr)
	if err != nil {
		return nil, fmt.Errorf("jq expression %s: %w", short(expr), err)
	}
	in := make(map[string]any, 5)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"args", args}, {"result", result}, {"capture", capture}} {
		v, err := decode(f.raw)
		if err != nil {
			return nil, fmt.Errorf(".%s is not JSON: %w", f.name, err)
		}
		in[f.name] = v
	}
	in["result_json"] = textJSON(in["result"])
	in["capture_json"] = textJSON(in["capture"])

	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	iter := code.RunWithContext(ctx, in)
	v, ok := iter.Next()
	if !ok {
		return nil, fmt.Errorf("jq expression %s produced no value, want one object", short(expr))
	}
	if err, isErr := v.(error); isErr {
		return nil, evalError(expr, err)
	}
	if second, more := iter.Next(); more {
		if err, isErr := second.(error); isErr {
			return nil, evalError(expr, err)
		}
		return nil, fmt.Errorf("jq expression %s produced more than one value, want one object", short(expr))
	}
	if _, isObj := v.(map[string]any); !isObj {
		return nil, fmt.Errorf("jq expression %s produced %s, want an object", short(expr), typeName(v))
	}
	out, err := gojq.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jq expression %s: encode output: %w", short(expr), err)
	}
	return out, nil
}

// evalError explains an error value from a running program.
func evalError(expr string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("jq expression %s was stopped after %s: it runs too long (a loop without end?)", short(expr), evalTimeout)
	}
	var ve gojq.ValueError
	if errors.As(err, &ve) {
		if m, ok := ve.Value().(map[string]any); ok {
			if reason, ok := m["cannot_undo"]; ok {
				return fmt.Errorf("%w: %v", ErrCannotUndo, reason)
			}
		}
	}
	return fmt.Errorf("jq expression %s: %w", short(expr), err)
}

// decode parses raw into the values gojq works on, keeping numbers as
// json.Number. Empty input is null.
func decode(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// textJSON returns the first text content item of an MCP result parsed as
// JSON, or nil when there is none or it does not parse.
func textJSON(result any) any {
	m, _ := result.(map[string]any)
	items, _ := m["content"].([]any)
	for _, it := range items {
		item, _ := it.(map[string]any)
		if item["type"] != "text" {
			continue
		}
		text, _ := item["text"].(string)
		v, err := decode(json.RawMessage(text))
		if err != nil {
			return nil
		}
		return v
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "a number"
}

// short abbreviates an expression for error messages (the packs' are long).
func short(expr string) string {
	s := strings.Join(strings.Fields(expr), " ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return fmt.Sprintf("%q", s)
}

// resultNames are the input fields that hold the forward call's result.
var resultNames = map[string]bool{"result": true, "result_json": true}

// NeedsResult reports whether expr reads the forward call's result
// (.result or .result_json), so that it cannot be evaluated for a step
// whose outcome is unknown. It walks the parsed expression for the two
// names: as a field (.result, ."result", .["result"]), in an object
// shorthand ({result}), a destructuring pattern or any string literal
// (getpath(["result"])). An expression that reaches the result without
// naming it (to_entries, .[], ..) is not detected. An expression that does
// not parse is reported as needing the result: it cannot run anyway.
func NeedsResult(expr string) bool {
	return mentionsAny(expr, resultNames)
}

// mentionsAny reports whether expr names one of names the way NeedsResult
// describes; an expression that does not parse counts as naming them.
func mentionsAny(expr string, names map[string]bool) bool {
	q, err := gojq.Parse(expr)
	if err != nil {
		return true
	}
	return mentions(reflect.ValueOf(q), names)
}

// mentions walks a gojq AST value for a name in names.
func mentions(v reflect.Value, names map[string]bool) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return false
		}
		if v.Kind() == reflect.Pointer && v.CanInterface() {
			switch n := v.Interface().(type) {
			case *gojq.Index:
				if names[n.Name] {
					return true
				}
			case *gojq.String:
				if len(n.Queries) == 0 && names[n.Str] {
					return true
				}
			case *gojq.ObjectKeyVal:
				// {result: ...} only builds a key named result; the
				// shorthand {result} or {"result"} reads .result.
				if n.Val == nil && (names[n.Key] || n.KeyString != nil && names[n.KeyString.Str]) {
					return true
				}
				return mentions(reflect.ValueOf(n.KeyQuery), names) || mentions(reflect.ValueOf(n.Val), names) ||
					n.KeyString != nil && mentions(reflect.ValueOf(n.KeyString.Queries), names)
			case *gojq.PatternObject:
				if names[n.Key] || names[strings.TrimPrefix(n.Key, "$")] {
					return true
				}
			}
		}
		return mentions(v.Elem(), names)
	case reflect.Struct:
		for i := range v.NumField() {
			if mentions(v.Field(i), names) {
				return true
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if mentions(v.Index(i), names) {
				return true
			}
		}
	}
	return false
}
