package config

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "100B", want: 100},
		{in: "512KiB", want: 512 << 10},
		{in: "4MiB", want: 4 << 20},
		{in: "4mib", want: 4 << 20},
		{in: "4 MiB", want: 4 << 20},
		{in: " 1GiB ", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "1.5MiB", want: 3 << 19},
		{in: "0.5KiB", want: 512},
		{in: "10KB", want: 10_000},
		{in: "4MB", want: 4_000_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "1TB", want: 1_000_000_000_000},
		{in: "8191TiB", want: 8191 << 40},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "", err: `want a number of bytes or a number with a unit`},
		{in: "MiB", err: `want a number of bytes or a number with a unit`},
		{in: "-1", err: "must not be negative"},
		{in: "4M", err: `unit "M" is ambiguous; use MiB (powers of 1024) or MB (powers of 1000)`},
		{in: "4k", err: `unit "k" is ambiguous; use KiB`},
		{in: "4 bytes", err: `unknown unit "bytes"`},
		{in: "1.2.3MiB", err: `malformed number "1.2.3"`},
		{in: ".5MiB", err: `malformed number ".5"`},
		{in: "5.MiB", err: `malformed number "5."`},
		{in: "0.1KiB", err: "not a whole number of bytes"},
		{in: "1.5B", err: "not a whole number of bytes"},
		{in: "8388607TiB", want: 8388607 << 40},
		{in: "8388608TiB", err: "too large"},
		{in: "9223372036854775808", err: "too large"},
		{in: "1.0000000000001KiB", err: "too many decimal places"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{KiB, "1KiB"},
		{1536 * KiB, "1536KiB"},
		{4 * MiB, "4MiB"},
		{GiB, "1GiB"},
		{3 * TiB, "3TiB"},
		{-5, "-5B"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		if back, err := ParseSize(tt.want); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d back", tt.want, back, err, int64(tt.in))
		}
	}
}

func TestByteSizeYAML(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "4194304", want: 4 * MiB},
		{in: "512KiB", want: 512 * KiB},
		{in: `"1MB"`, want: MB},
		{in: "0x100", want: 256},
		{in: "-1", err: "agenthelm.yaml:1:26: limits.max_body_bytes: size must not be negative"},
		{in: "18446744073709551615", err: "agenthelm.yaml:1:26: limits.max_body_bytes: size is too large"},
		{in: "1.5", err: `agenthelm.yaml:1:26: limits.max_body_bytes: expected a size like 4MiB or a number of bytes, got a number`},
		{in: "true", err: `agenthelm.yaml:1:26: limits.max_body_bytes: expected a size like 4MiB or a number of bytes, got a boolean`},
	}
	for _, tt := range tests {
		doc := "limits: {max_body_bytes: " + tt.in + "}\n"
		c, err := parse([]byte(doc), "agenthelm.yaml", noEnv)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Parse(%q) = %v, want %s", doc, err, tt.err)
			}
			continue
		}
		if err != nil || c.Limits.MaxBodyBytes != tt.want {
			t.Errorf("Parse(%q): max_body_bytes = %v, %v; want %v", doc, c, err, tt.want)
		}
	}
}
