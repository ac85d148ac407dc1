package saga

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
)

// IdempotencyKey derives the key sent upstream with a step's call
// (purpose "forward") or its compensation ("compensate") from the saga id
// and step number only, so it is the same on every retry and after any
// restart (rule 12).
func IdempotencyKey(sagaID string, step int, purpose string) string {
	h := sha256.Sum256([]byte(sagaID + "\x00" + strconv.Itoa(step) + "\x00" + purpose))
	return "ah-" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:20])
}
