package policy

import (
	"bytes"
	"hash/maphash"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// stepCache remembers the AST values of saga steps. Every call of a saga
// carries the saga's earlier steps, which do not change (only a step's
// status does, and the status is part of the key), so without a cache a
// saga of n steps converts O(n²) steps. It keeps two generations of at most
// max entries each: when the current one is full it becomes the old one
// and the oldest is dropped, so memory stays bounded and recently used
// steps survive. A nil *stepCache converts every time.
type stepCache struct {
	mu       sync.Mutex
	max      int
	seed     maphash.Seed
	cur, old map[stepKey]cachedStep
}

type stepKey struct {
	tool, upstream, status, time string
	unix                         int64
	args                         uint64 // maphash of the arguments
}

type cachedStep struct {
	args    []byte // compared on a hit: a hash collision never returns the wrong step
	term    *ast.Term
	amounts []stepAmount // the amounts in its arguments, for saga.amounts
}

// maxCachedArgs keeps large arguments (file contents) out of the cache.
const maxCachedArgs = 16 << 10

func newStepCache(max int) *stepCache {
	return &stepCache{max: max, seed: maphash.MakeSeed(), cur: map[stepKey]cachedStep{}}
}

// step returns the value of s and the amounts in its arguments, converting
// it on a miss.
func (c *stepCache) step(s *StepSummary) (*ast.Term, []stepAmount, error) {
	if s.memo == nil {
		return c.lookup(s)
	}
	if e := s.memo.v.Load(); e != nil && sameStep(&e.of, s) {
		return e.val.term, e.val.amounts, nil
	}
	t, amounts, err := c.lookup(s)
	if err == nil {
		of := *s
		of.memo = nil
		s.memo.v.Store(&memoEntry{of: of, val: cachedStep{term: t, amounts: amounts}})
	}
	return t, amounts, err
}

// lookup is step without the summary's memo.
func (c *stepCache) lookup(s *StepSummary) (*ast.Term, []stepAmount, error) {
	if c == nil || len(s.Arguments) > maxCachedArgs {
		return stepValue(s)
	}
	k := stepKey{tool: s.Tool, upstream: s.Upstream, status: s.Status, time: s.Time, unix: s.Unix, args: maphash.Bytes(c.seed, s.Arguments)}
	c.mu.Lock()
	e, ok := c.cur[k]
	if !ok {
		e, ok = c.old[k]
	}
	c.mu.Unlock()
	if ok && bytes.Equal(e.args, s.Arguments) {
		return e.term, e.amounts, nil
	}
	t, amounts, err := stepValue(s)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[stepKey]cachedStep, c.max)
	}
	c.cur[k] = cachedStep{args: bytes.Clone(s.Arguments), term: t, amounts: amounts}
	c.mu.Unlock()
	return t, amounts, nil
}
