package policy

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
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

// fill sets d's verdict fields from the value the policy returned: the
// decision object as OPA renders it to Go (map[string]any, []any,
// json.Number, string, bool, nil). Any deviation from the contract is an
// ErrMalformed error and d is left for the caller to fail closed.
func (d *Decision) fill(v any) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: want an object, got %s", ErrMalformed, jsonType(v))
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
	if x, ok := obj["approval_timeout"]; ok && x != "" {
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf(`%w: "approval_timeout" must be a duration string such as "30m", got %s`, ErrMalformed, jsonType(x))
		}
		t, perr := time.ParseDuration(s)
		if perr != nil || t <= 0 {
			return fmt.Errorf(`%w: "approval_timeout" %q is not a positive duration such as "30m"`, ErrMalformed, s)
		}
		d.ApprovalTimeout = t
	}
	if x, ok := obj["labels"]; ok {
		m, ok := x.(map[string]any)
		if !ok {
			return fmt.Errorf(`%w: "labels" must be an object of strings, got %s`, ErrMalformed, jsonType(x))
		}
		if len(m) > 0 {
			d.Labels = make(map[string]string, len(m))
		}
		for k, lv := range m {
			s, ok := lv.(string)
			if !ok {
				return fmt.Errorf(`%w: "labels.%s" must be a string, got %s`, ErrMalformed, k, jsonType(lv))
			}
			d.Labels[k] = s
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

func optBool(obj map[string]any, key string) (bool, error) {
	x, ok := obj[key]
	if !ok {
		return false, nil
	}
	b, ok := x.(bool)
	if !ok {
		return false, fmt.Errorf("%w: %q must be a boolean, got %s", ErrMalformed, key, jsonType(x))
	}
	return b, nil
}

func optStrings(obj map[string]any, key string) ([]string, error) {
	x, ok := obj[key]
	if !ok {
		return nil, nil
	}
	arr, ok := x.([]any) // a Rego set arrives as an array too
	if !ok {
		return nil, fmt.Errorf("%w: %q must be an array of strings, got %s", ErrMalformed, key, jsonType(x))
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %q[%d] must be a string, got %s", ErrMalformed, key, i, jsonType(e))
		}
		out[i] = s
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
