package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Record format. formatVersion is written once to keyFormat when a journal
// is created; envelopeVersion is the "v" field of every event and head
// value. Both only ever grow: a build reads every older version and refuses
// newer ones (ErrFormat).
const (
	formatVersion   = 1
	envelopeVersion = 1
)

// Key layout, format 1. Every variable-length string ({saga}, {status},
// {tool}) is escaped and terminated (see appendString), so no id can be a
// prefix of another and any byte string is a valid id; every time and
// sequence number is 8 bytes big-endian so byte order is numeric order.
//
//	v1/meta/format                          {"format":1}
//	v1/e/{saga}{seq}                        event envelope
//	v1/h/{saga}                             head envelope
//	v1/i/time/{created}{saga}               every saga
//	v1/i/status/{status}{created}{saga}     every saga, by status
//	v1/i/tool/{tool}{created}{saga}         one per distinct tool of the saga
//	v1/i/live/{created}{saga}               sagas that are not terminal
//	v1/i/due/{next_attempt}{saga}           sagas with a NextAttempt
//	v1/i/expire/{expires}{saga}             terminal sagas, by expiry
//
// Index values are empty: listings iterate keys only and read the small
// head of each saga they return, never its events.
var (
	keyFormat      = []byte("v1/meta/format")
	prefixEvent    = []byte("v1/e/")
	prefixHead     = []byte("v1/h/")
	prefixTime     = []byte("v1/i/time/")
	prefixStatus   = []byte("v1/i/status/")
	prefixTool     = []byte("v1/i/tool/")
	prefixLive     = []byte("v1/i/live/")
	prefixDue      = []byte("v1/i/due/")
	prefixExpire   = []byte("v1/i/expire/")
	stringEnd      = []byte{0x00, 0x01}
	escapedZero    = []byte{0x00, 0xff}
	maxIndexedTime = time.Unix(0, math.MaxInt64)
)

// appendString appends s escaped and terminated: each 0x00 byte becomes
// 0x00 0xff and the string ends with 0x00 0x01. The encoding preserves byte
// order and is prefix-free, so "a" and "a/b" or "a\x00" never collide.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			dst = append(dst, escapedZero...)
			continue
		}
		dst = append(dst, s[i])
	}
	return append(dst, stringEnd...)
}

// readString decodes a string written by appendString from the start of
// src and returns it with the bytes that follow it.
func readString(src []byte) (s string, rest []byte, ok bool) {
	var b []byte
	for i := 0; i < len(src); i++ {
		if src[i] != 0 {
			continue
		}
		if i+1 >= len(src) {
			return "", nil, false
		}
		switch src[i+1] {
		case 0xff:
			b = append(b, src[:i+1]...)
			src = src[i+2:]
			i = -1
		case 0x01:
			b = append(b, src[:i]...)
			return string(b), src[i+2:], true
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

// timeKey is t as nanoseconds since the Unix epoch, clamped to the range an
// index can hold (a zero or pre-1970 time sorts first).
func timeKey(t time.Time) uint64 {
	switch {
	case t.IsZero() || t.Before(time.Unix(0, 0)):
		return 0
	case t.After(maxIndexedTime):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

func appendUint64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, v)
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func eventPrefix(saga string) []byte { return appendString(concat(prefixEvent), saga) }

func eventKey(saga string, seq uint64) []byte { return appendUint64(eventPrefix(saga), seq) }

func headKey(saga string) []byte { return appendString(concat(prefixHead), saga) }

// seqFromEventKey returns the sequence number at the end of an event key.
func seqFromEventKey(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

// indexKey builds prefix [component] time saga.
func indexKey(prefix []byte, component *string, t uint64, saga string) []byte {
	k := concat(prefix)
	if component != nil {
		k = appendString(k, *component)
	}
	return appendString(appendUint64(k, t), saga)
}

// sagaFromIndexKey parses the saga id out of an index key under prefix;
// hasComponent says whether the prefix is followed by a string component
// (status or tool) that is not part of prefix itself.
func sagaFromIndexKey(key, prefix []byte, hasComponent bool) (saga string, t uint64, ok bool) {
	rest, found := bytes.CutPrefix(key, prefix)
	if !found {
		return "", 0, false
	}
	if hasComponent {
		if _, rest, ok = readString(rest); !ok {
			return "", 0, false
		}
	}
	if len(rest) < 8 {
		return "", 0, false
	}
	t = binary.BigEndian.Uint64(rest[:8])
	saga, rest, ok = readString(rest[8:])
	if !ok || len(rest) != 0 {
		return "", 0, false
	}
	return saga, t, true
}

// indexKeys returns every index key a head owns.
func indexKeys(h *Head) [][]byte {
	created := timeKey(h.Created)
	keys := [][]byte{
		indexKey(prefixTime, nil, created, h.Saga),
		indexKey(prefixStatus, &h.Status, created, h.Saga),
	}
	for _, tool := range distinct(h.Tools) {
		keys = append(keys, indexKey(prefixTool, &tool, created, h.Saga))
	}
	if !h.Terminal {
		keys = append(keys, indexKey(prefixLive, nil, created, h.Saga))
	} else {
		keys = append(keys, indexKey(prefixExpire, nil, timeKey(h.Expires), h.Saga))
	}
	if !h.NextAttempt.IsZero() {
		keys = append(keys, indexKey(prefixDue, nil, timeKey(h.NextAttempt), h.Saga))
	}
	return keys
}

func distinct(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// eventEnvelope is the stored form of an Event, format v1:
//
//	{"v":1,"kind":"step.intent","time":"2026-03-01T12:00:00.123456789Z","body":{...}}
//
// The seq lives in the key. "body" is omitted when the event has none and is
// otherwise stored byte for byte as the caller gave it (minus surrounding
// white space).
type eventEnvelope struct {
	V    int             `json:"v"`
	Kind string          `json:"kind"`
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body,omitempty"`
}

// encodeEvent returns the stored form of e. It is written by hand rather
// than with json.Marshal so that the body keeps its exact bytes.
func encodeEvent(e Event) ([]byte, error) {
	body := bytes.TrimSpace(e.Body)
	if len(body) > 0 && !json.Valid(body) {
		return nil, fmt.Errorf("body is not valid JSON")
	}
	kind, err := json.Marshal(e.Kind)
	if err != nil {
		return nil, err
	}
	t, err := json.Marshal(e.Time.UTC())
	if err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	buf := make([]byte, 0, len(body)+len(kind)+len(t)+32)
	buf = fmt.Appendf(buf, `{"v":%d,"kind":`, envelopeVersion)
	buf = append(buf, kind...)
	buf = append(buf, `,"time":`...)
	buf = append(buf, t...)
	if len(body) > 0 {
		buf = append(buf, `,"body":`...)
		buf = append(buf, body...)
	}
	return append(buf, '}'), nil
}

func decodeEvent(seq uint64, val []byte) (Event, error) {
	var env eventEnvelope
	if err := json.Unmarshal(val, &env); err != nil {
		return Event{}, err
	}
	if err := checkEnvelope(env.V); err != nil {
		return Event{}, err
	}
	return Event{Seq: seq, Kind: env.Kind, Time: env.Time, Body: env.Body}, nil
}

// headEnvelope is the stored form of a Head, format v1.
type headEnvelope struct {
	V           int       `json:"v"`
	Saga        string    `json:"saga"`
	Status      string    `json:"status"`
	Scope       string    `json:"scope,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Tools       []string  `json:"tools,omitempty"`
	Upstreams   []string  `json:"upstreams,omitempty"`
	Steps       int       `json:"steps,omitempty"`
	Terminal    bool      `json:"terminal,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastSeq     uint64    `json:"last_seq,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
}

func encodeHead(h *Head) ([]byte, error) {
	return json.Marshal(headEnvelope{
		V:           envelopeVersion,
		Saga:        h.Saga,
		Status:      h.Status,
		Scope:       h.Scope,
		Created:     h.Created.UTC(),
		Updated:     h.Updated.UTC(),
		Tools:       h.Tools,
		Upstreams:   h.Upstreams,
		Steps:       h.Steps,
		Terminal:    h.Terminal,
		NextAttempt: utcOrZero(h.NextAttempt),
		LastSeq:     h.LastSeq,
		Expires:     utcOrZero(h.Expires),
	})
}

func decodeHead(val []byte) (Head, error) {
	var env headEnvelope
	if err := json.Unmarshal(val, &env); err != nil {
		return Head{}, err
	}
	if err := checkEnvelope(env.V); err != nil {
		return Head{}, err
	}
	return Head{
		Saga:        env.Saga,
		Status:      env.Status,
		Scope:       env.Scope,
		Created:     env.Created,
		Updated:     env.Updated,
		Tools:       env.Tools,
		Upstreams:   env.Upstreams,
		Steps:       env.Steps,
		Terminal:    env.Terminal,
		NextAttempt: env.NextAttempt,
		LastSeq:     env.LastSeq,
		Expires:     env.Expires,
	}, nil
}

func checkEnvelope(v int) error {
	switch {
	case v <= 0:
		return fmt.Errorf("record has no version")
	case v > envelopeVersion:
		return fmt.Errorf("%w: record version %d, this build reads up to %d", ErrFormat, v, envelopeVersion)
	}
	return nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// formatRecord is the value of keyFormat.
type formatRecord struct {
	Format int `json:"format"`
}
