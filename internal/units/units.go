// Package units holds the value types the config file writes in human form:
// byte sizes ("15MiB"), durations ("30s", "30m") and rates ("45/s").
// Each type decodes itself from YAML and rejects anything ambiguous, so a
// typo such as "15 megs" or "5/sec" is an error at load, never a surprise at
// run time. ("15MB" is 15,000,000 bytes; "15MiB" is 15×2^20.)
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes. YAML accepts a plain integer or an integer
// with one of the suffixes B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB
// (powers of 1000).
type ByteSize int64

var byteSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseByteSize parses "15MiB", "8KiB", "1024" or "512B".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, bs := range byteSuffixes {
		if strings.HasSuffix(s, bs.suffix) {
			mult = bs.mult
			num = strings.TrimSpace(strings.TrimSuffix(s, bs.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: write a whole number with an optional unit, e.g. 8KiB, 15MiB, 1GiB", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineError(n, fmt.Errorf("expected a size such as 15MiB"))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return lineError(n, err)
	}
	*b = v
	return nil
}

// String formats the size with the largest binary unit that divides it.
func (b ByteSize) String() string {
	switch {
	case b != 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b != 0 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b != 0 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return fmt.Sprintf("%dB", int64(b))
}

// Duration is a time.Duration written as Go writes it ("10s", "1m30s", "24h").
// A bare number is refused: "30" could mean seconds or minutes.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineError(n, fmt.Errorf("expected a duration such as 10s"))
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil || v < 0 {
		return lineError(n, fmt.Errorf("invalid duration %q: write a number with a unit, e.g. 500ms, 10s, 30m, 24h", n.Value))
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Rate is a number of events per unit of time, written "45/s", "300/m" or "2/h".
type Rate struct {
	Count int
	Per   time.Duration
}

// ParseRate parses "N/s", "N/m" or "N/h".
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if !ok || err != nil || n <= 0 {
		return Rate{}, fmt.Errorf("invalid rate %q: write a positive count per unit, e.g. 45/s, 300/m", s)
	}
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rate{}, fmt.Errorf("invalid rate %q: the unit after / must be s, m or h", s)
	}
	return Rate{Count: n, Per: per}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineError(n, fmt.Errorf("expected a rate such as 45/s"))
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return lineError(n, err)
	}
	*r = v
	return nil
}

// PerSecond returns the rate as events per second.
func (r Rate) PerSecond() float64 {
	if r.Per == 0 {
		return 0
	}
	return float64(r.Count) / r.Per.Seconds()
}

// IsZero reports whether the rate was left unset.
func (r Rate) IsZero() bool { return r.Count == 0 }

// String formats the rate as it is written in the config.
func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	unit := "s"
	switch r.Per {
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	return fmt.Sprintf("%d/%s", r.Count, unit)
}

// lineError reports err as a YAML type error at the line of n. A plain error
// from an UnmarshalYAML method aborts decoding and loses the position; a
// *yaml.TypeError keeps it ("line 12: invalid size ...") and lets the decoder
// go on to report the file's other problems too.
func lineError(n *yaml.Node, err error) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
}
