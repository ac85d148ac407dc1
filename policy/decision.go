package policy

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Verdicts (Decision.Verdict).
const (
	VerdictAllow           = "allow"
	VerdictDeny            = "deny"
	VerdictRequireApproval = "require_approval"
)

// Decision is the outcome of one policy evaluation.
type Decision struct {
	// ID is unique per decision (a UUIDv7: sortable by time). The journal
	// and traces refer to the decision by it.
	ID string
	// Revision identifies the policy files and data that decided.
	Revision string
	// Allow says the call may be forwarded now. It is never true together
	// with RequireApproval.
	Allow bool
	// RequireApproval says the call is held until a human approves it.
	RequireApproval bool
	// Reasons explain the decision, for the agent, the journal and approvers.
	// A deny always has at least one.
	Reasons []string
	// Approvers name who may approve a held call; empty means the
	// configured default.
	Approvers []string
	// ApprovalTimeout is how long a held call waits; zero means the
	// configured default. Expiry means deny.
	ApprovalTimeout time.Duration
	// Labels are free-form attributes set by the policy (traces, journal).
	Labels map[string]string
	// DryRun says the engine runs in dry-run mode: the caller forwards the
	// call whatever the verdict, and journals and traces the verdict as what
	// would have happened.
	DryRun bool
	// Err is why the decision failed closed (undefined decision, evaluation
	// error, malformed decision object, invalid input); nil otherwise.
	Err error
	// Duration is how long the evaluation took.
	Duration time.Duration
	// Raw is the decision object as the policy returned it (nil if none).
	Raw json.RawMessage
}

// Verdict is "allow", "deny" or "require_approval".
func (d Decision) Verdict() string {
	switch {
	case d.RequireApproval:
		return VerdictRequireApproval
	case d.Allow:
		return VerdictAllow
	default:
		return VerdictDeny
	}
}

// Errors a failed-closed decision carries in Decision.Err (use errors.Is).
var (
	// ErrUndefined: the policy produced no decision for this input.
	ErrUndefined = errors.New("policy decision is undefined")
	// ErrEvaluation: evaluating the policy raised an error.
	ErrEvaluation = errors.New("policy evaluation error")
	// ErrMalformed: the decision is not an object of the documented shape.
	ErrMalformed = errors.New("policy decision is malformed")
	// ErrInput: the input document could not be built.
	ErrInput = errors.New("policy input is invalid")
)

// failClosed turns d into a deny that explains err.
func (d *Decision) failClosed(err error) {
	d.Allow, d.RequireApproval = false, false
	d.Approvers, d.ApprovalTimeout, d.Labels = nil, 0, nil
	d.Err = err
	d.Reasons = []string{"agenthelm policy failed closed: " + err.Error()}
}

// fill sets d's verdict fields from the value the policy returned, as an
// AST value. Any deviation from the contract is an ErrMalformed error (whose
// message names types as JSON does: a set is an array) and d is left for
// the caller to fail closed.
func (d *Decision) fill(v ast.Value) error {
	obj, ok := v.(ast.Object)
	if !ok {
		return fmt.Errorf("%w: want an object, got %s", ErrMalformed, astType(v))
	}
	var err error
	if d.Allow, err = optBool(obj, "allow"); err != nil {
		return err
	}
	if d.RequireApproval, err = optBool(obj, "require_approval"); err != nil {
		return err
	}
	if d.Reasons, err = optStrings(obj, "reasons"); err != nil {
		return err
	}
	if d.Approvers, err = optStrings(obj, "approvers"); err != nil {
		return err
	}
	if x := obj.Get(fieldTerms["approval_timeout"]); x != nil && x.Value.Compare(ast.String("")) != 0 {
		s, ok := x.Value.(ast.String)
		if !ok {
			return fmt.Errorf(`%w: "approval_timeout" must be a duration string such as "30m", got %s`, ErrMalformed, astType(x.Value))
		}
		t, perr := time.ParseDuration(string(s))
		if perr != nil || t <= 0 {
			return fmt.Errorf(`%w: "approval_timeout" %q is not a positive duration such as "30m"`, ErrMalformed, string(s))
		}
		d.ApprovalTimeout = t
	}
	if x := obj.Get(fieldTerms["labels"]); x != nil {
		m, ok := x.Value.(ast.Object)
		if !ok {
			return fmt.Errorf(`%w: "labels" must be an object of strings, got %s`, ErrMalformed, astType(x.Value))
		}
		if m.Len() > 0 {
			d.Labels = make(map[string]string, m.Len())
		}
		err := m.Iter(func(k, lv *ast.Term) error {
			s, ok := lv.Value.(ast.String)
			if !ok {
				return fmt.Errorf(`%w: "labels.%s" must be a string, got %s`, ErrMalformed, keyString(k), astType(lv.Value))
			}
			d.Labels[keyString(k)] = string(s)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if d.RequireApproval {
		d.Allow = false // approval wins: never forward a held call
	}
	if !d.Allow && !d.RequireApproval && len(d.Reasons) == 0 {
		d.Reasons = []string{"denied by policy (no reason given)"}
	}
	return nil
}

// fieldTerms are the decision's fields as object keys, built once.
var fieldTerms = map[string]*ast.Term{
	"allow": ast.StringTerm("allow"), "require_approval": ast.StringTerm("require_approval"),
	"reasons": ast.StringTerm("reasons"), "approvers": ast.StringTerm("approvers"),
	"approval_timeout": ast.StringTerm("approval_timeout"), "labels": ast.StringTerm("labels"),
}

func optBool(obj ast.Object, key string) (bool, error) {
	x := obj.Get(fieldTerms[key])
	if x == nil {
		return false, nil
	}
	b, ok := x.Value.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%w: %q must be a boolean, got %s", ErrMalformed, key, astType(x.Value))
	}
	return bool(b), nil
}

func optStrings(obj ast.Object, key string) ([]string, error) {
	x := obj.Get(fieldTerms[key])
	if x == nil {
		return nil, nil
	}
	var elems []*ast.Term
	switch c := x.Value.(type) {
	case *ast.Array:
		elems = make([]*ast.Term, c.Len())
		for i := range elems {
			elems[i] = c.Elem(i)
		}
	case ast.Set: // a Rego set is accepted as an array, in its order
		elems = c.Slice()
	default:
		return nil, fmt.Errorf("%w: %q must be an array of strings, got %s", ErrMalformed, key, astType(x.Value))
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		s, ok := e.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("%w: %q[%d] must be a string, got %s", ErrMalformed, key, i, astType(e.Value))
		}
		out[i] = string(s)
	}
	return out, nil
}

// jsonType names the JSON type of a value OPA rendered to Go.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64, int:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// newID returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then
// random bits from the runtime's cryptographically seeded generator.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.UnixMilli())<<16|rand.Uint64()&0x0fff|0x7000)
	binary.BigEndian.PutUint64(b[8:16], rand.Uint64()&^(0xc0<<56)|0x80<<56)
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}
