package compensators

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/saga"
)

// Rule is what the saga engine needs to know about one tool of one
// upstream. The zero Rule (Source "default") is a tool that writes, is not
// idempotent and has no compensator: irreversible when a saga unwinds.
type Rule struct {
	// ReadOnly: journaled, never compensated.
	ReadOnly bool
	// Irreversible: a pivot with no compensator; the default policy holds
	// such calls for approval.
	Irreversible bool
	// Idempotent: the same call twice has the effect of one, so a failed
	// forward call may be re-sent with the same idempotency key.
	Idempotent bool
	// ErrorsMayLeaveEffects: a step that returned a tool error is
	// compensated too.
	ErrorsMayLeaveEffects bool
	// ContinueOnError: a failure of this tool does not unwind the saga.
	ContinueOnError bool
	// Compensate undoes the step (nil: none). Its Upstream is empty: the
	// step's own upstream.
	Compensate *saga.Compensator
	// Capture is the call made before the step to read the state it is
	// about to change (nil: none).
	Capture *Capture
	// Source says where the rule came from: "config", "pack:NAME",
	// "annotations" (a trusted upstream's tools/list) or "default".
	Source string
}

// Capture is a pre-image call: a tool of the same upstream and a jq
// expression over {args} building its arguments.
type Capture struct {
	Tool string
	Args string
}

// Annotations are the hints an MCP server gives about a tool in tools/list.
// Nil means absent (MCP defaults: not read-only, destructive, not
// idempotent, open world).
type Annotations struct {
	ReadOnlyHint, DestructiveHint, IdempotentHint, OpenWorldHint *bool
}

// Set holds the rules of every tool of every upstream. It is safe for
// concurrent use.
type Set struct {
	rules   map[string]map[string]entry // upstream -> tool -> rule
	trusted map[string]bool

	mu  sync.RWMutex
	ann map[string]map[string]Annotations // upstream -> tool -> hints
}

// entry is a rule with the field paths its calls came from, for Check.
type entry struct {
	Rule
	compPath, capPath string
	// configured: the tool has a rule in the configuration (checked even
	// when the upstream lacks it); pack rules may cover tools a server
	// version does not have.
	configured bool
}

// New builds the rules from cfg: each upstream's packs in the order listed
// (a later pack wins for a tool both cover), then the upstream's tools
// rules over them, and a rule per route of a REST upstream (route.go). A
// configured tool that says how it is undone (read_only, irreversible,
// compensate or capture) replaces the pack's way of undoing it; its flags
// (idempotent, errors_may_leave_effects, on_error: continue) add to the
// pack's. New compiles every expression and reports all that do not
// compile, and unknown packs, naming the field.
func New(cfg *config.Config) (*Set, error) {
	s := &Set{rules: map[string]map[string]entry{}, trusted: map[string]bool{}, ann: map[string]map[string]Annotations{}}
	var errs []error
	for _, up := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		u := cfg.Upstreams[up]
		s.trusted[up] = u.Trusted
		tools := map[string]entry{}
		for i, name := range u.Packs {
			p, ok := packs[name]
			if !ok {
				errs = append(errs, fmt.Errorf("upstreams.%s.packs[%d]: unknown pack %q (known: %s)", up, i, name, strings.Join(PackNames(), ", ")))
				continue
			}
			at := fmt.Sprintf("upstreams.%s.packs[%d] (pack %s): ", up, i, name)
			for tool, r := range p {
				r.Source = "pack:" + name
				tools[tool] = entry{Rule: r, compPath: at + tool + ".compensate", capPath: at + tool + ".capture"}
			}
		}
		for _, tool := range slices.Sorted(maps.Keys(u.Tools)) {
			tools[tool] = overlay(fmt.Sprintf("upstreams.%s.tools.%s", up, tool), u.Tools[tool], tools[tool])
		}
		for _, tool := range slices.Sorted(maps.Keys(tools)) {
			errs = append(errs, tools[tool].compile()...)
		}
		s.rules[up] = tools
	}
	errs = append(errs, s.addRoutes(cfg.Routes)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// overlay lays a tool's configuration over the pack's rule for it (base,
// the zero entry if none).
func overlay(path string, t config.Tool, base entry) entry {
	e := entry{Rule: Rule{Source: "config"}, configured: true, compPath: path + ".compensate", capPath: path + ".capture"}
	if t.ReadOnly || t.Irreversible || t.Compensate != nil || t.Capture != nil {
		e.ReadOnly, e.Irreversible = t.ReadOnly, t.Irreversible
		if c := t.Compensate; c != nil {
			e.Compensate = &saga.Compensator{Tool: c.Tool, Args: c.Args.String(), NeedsResult: NeedsResult(c.Args.String())}
		}
		if c := t.Capture; c != nil {
			e.Capture = &Capture{Tool: c.Tool, Args: c.Args.String()}
		}
	} else {
		e.ReadOnly, e.Irreversible, e.Compensate, e.Capture = base.ReadOnly, base.Irreversible, base.Compensate, base.Capture
		e.compPath, e.capPath = base.compPath, base.capPath
	}
	e.Idempotent = t.Idempotent || base.Idempotent
	e.ErrorsMayLeaveEffects = t.ErrorsMayLeaveEffects || base.ErrorsMayLeaveEffects
	switch t.OnError {
	case config.OnErrorContinue:
		e.ContinueOnError = true
	case "":
		e.ContinueOnError = base.ContinueOnError
	}
	return e
}

// compile compiles the entry's expressions into the cache.
func (e entry) compile() []error {
	var errs []error
	try := func(path, src string) {
		if strings.TrimSpace(src) == "" {
			return
		}
		if _, err := compile(src); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	if c := e.Compensate; c != nil {
		try(e.compPath+".args", c.Args)
		for i, t := range c.Then {
			try(fmt.Sprintf("%s.then[%d].args", e.compPath, i), t.Args)
		}
	}
	if c := e.Capture; c != nil {
		try(e.capPath+".args", c.Args)
	}
	return errs
}

// Rule returns the rule for tool on upstream: the configuration's or a
// pack's; else, for a trusted upstream, what its annotations say
// (readOnlyHint, idempotentHint); else the default. The returned rule is
// the caller's to modify.
func (s *Set) Rule(upstream, tool string) Rule {
	if e, ok := s.rules[upstream][tool]; ok {
		r := e.Rule
		if c := r.Compensate; c != nil {
			cc := *c
			cc.Then = slices.Clone(c.Then)
			r.Compensate = &cc
		}
		if c := r.Capture; c != nil {
			cc := *c
			r.Capture = &cc
		}
		return r
	}
	if s.trusted[upstream] {
		s.mu.RLock()
		a, ok := s.ann[upstream][tool]
		s.mu.RUnlock()
		if ok {
			return Rule{ReadOnly: isTrue(a.ReadOnlyHint), Idempotent: isTrue(a.IdempotentHint), Source: "annotations"}
		}
	}
	return Rule{Source: "default"}
}

func isTrue(b *bool) bool { return b != nil && *b }

// SetAnnotations records the tool annotations an upstream listed
// (tools/list), replacing those it listed before. They count only for
// upstreams configured trusted: true, and only for tools that neither the
// configuration nor a pack has a rule for.
func (s *Set) SetAnnotations(upstream string, tools map[string]Annotations) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ann[upstream] = maps.Clone(tools)
}

// Check compares an upstream's rules with the tools it lists and returns
// one error per call to a tool it lacks (a compensation, a further
// compensation call or a capture), and per configured tool it lacks, in
// the form
//
//	upstreams.memory.tools.create_entities.compensate.tool: "delete_entitys" is not a tool of upstream memory (it has: ...)
//
// A pack's rules for tools the server does not have are not reported (a
// pack may cover several versions of a server), but their calls are.
func (s *Set) Check(upstream string, tools []string) []error {
	has := map[string]bool{}
	for _, t := range tools {
		has[t] = true
	}
	list := slices.Sorted(maps.Keys(has))
	listing := strings.Join(list, ", ")
	if len(list) > 40 {
		listing = strings.Join(list[:40], ", ") + fmt.Sprintf(" and %d more", len(list)-40)
	}
	if listing == "" {
		listing = "no tools"
	}
	lacks := func(path, tool string) error {
		return fmt.Errorf("%s: %q is not a tool of upstream %s (it has: %s)", path, tool, upstream, listing)
	}
	var errs []error
	rules := s.rules[upstream]
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		e := rules[name]
		if !has[name] {
			if e.configured {
				errs = append(errs, lacks(fmt.Sprintf("upstreams.%s.tools.%s", upstream, name), name))
			}
			continue
		}
		if c := e.Compensate; c != nil {
			if !has[c.Tool] {
				errs = append(errs, lacks(e.compPath+".tool", c.Tool))
			}
			for i, t := range c.Then {
				if !has[t.Tool] {
					errs = append(errs, lacks(fmt.Sprintf("%s.then[%d].tool", e.compPath, i), t.Tool))
				}
			}
		}
		if c := e.Capture; c != nil && !has[c.Tool] {
			errs = append(errs, lacks(e.capPath+".tool", c.Tool))
		}
	}
	return errs
}
