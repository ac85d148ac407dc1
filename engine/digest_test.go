package engine

import (
	"encoding/json"
	"testing"
)

func TestDigest(t *testing.T) {
	same := [][2]string{
		{`{"a":1,"b":"x"}`, `{ "b" : "x", "a" : 1 }`},
	}
	for _, p := range same {
		if digest(json.RawMessage(p[0])) != digest(json.RawMessage(p[1])) {
			t.Errorf("digest(%s) != digest(%s), want equal", p[0], p[1])
		}
	}
	different := [][2]string{
		{`{"id":9007199254740993}`, `{"id":9007199254740992}`}, // equal as float64
		{`{"amount":100}`, `{"amount":1000}`},
	}
	for _, p := range different {
		if digest(json.RawMessage(p[0])) == digest(json.RawMessage(p[1])) {
			t.Errorf("digest(%s) == digest(%s), want different", p[0], p[1])
		}
	}
}
