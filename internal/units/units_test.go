package units

import (
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseByteSize_AcceptsDocumentedForms(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"1024", 1024},
		{"512B", 512},
		{"8KiB", 8 << 10},
		{"15MiB", 15 << 20},
		{"1GiB", 1 << 30},
		// KB, MB and GB are decimal, as the ByteSize documentation says.
		{"1KB", 1000},
		{"15MB", 15_000_000},
		{"2GB", 2_000_000_000},
		{" 15MiB ", 15 << 20},
		{"15 MiB", 15 << 20},
		{"007KiB", 7 << 10},
		{"8589934591GiB", 8589934591 << 30},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if err != nil {
				t.Fatalf("ParseByteSize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseByteSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseByteSize_RejectsAmbiguousOrInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"B",
		"MiB",
		"-1",
		"-15MiB",
		"1.5MiB",
		"15M",
		"15Mi",
		"15mib",
		"15mb",
		"15kb",
		"15 bytes",
		"15TiB",
		"0x10",
		"1e6",
		"15MiBB",
		"15KiB5",
		"1_000",
		"9223372036854775808",
		"8589934592GiB", // 2^33 GiB overflows int64
		"9223372036854775807KB",
	} {
		t.Run(in, func(t *testing.T) {
			if got, err := ParseByteSize(in); err == nil {
				t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
			}
		})
	}
}

func TestParseByteSize_LargestValue(t *testing.T) {
	got, err := ParseByteSize("9223372036854775807")
	if err != nil || got != math.MaxInt64 {
		t.Errorf("got %d, %v", got, err)
	}
}

func TestByteSize_StringRoundTrips(t *testing.T) {
	cases := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1 << 10, "1KiB"},
		{1536, "1536B"},
		{15 << 20, "15MiB"},
		{3 << 30, "3GiB"},
		{1<<30 + 1<<20, "1025MiB"},
	}
	for _, tc := range cases {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseByteSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
	}
}

// decode unmarshals a one-key YAML document into a struct holding v.
func decode[T any](doc string) (T, error) {
	var out struct {
		V T `yaml:"v"`
	}
	err := yaml.Unmarshal([]byte(doc), &out)
	return out.V, err
}

func TestByteSize_UnmarshalYAML(t *testing.T) {
	good := map[string]ByteSize{
		"v: 15MiB":    15 << 20,
		"v: 4096":     4096,
		"v: \"8KiB\"": 8 << 10,
		"v: 15MB":     15_000_000,
	}
	for doc, want := range good {
		got, err := decode[ByteSize](doc)
		if err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", doc, got, err, want)
		}
	}
	for _, doc := range []string{"v: 15XB", "v: -1", "v: [1]", "v: {a: 1}", "v: 1.5KiB"} {
		if got, err := decode[ByteSize](doc); err == nil {
			t.Errorf("%q: got %d, want an error", doc, got)
		}
	}
}

func TestDuration_UnmarshalYAML(t *testing.T) {
	good := []struct {
		doc  string
		want time.Duration
	}{
		{"v: 10s", 10 * time.Second},
		{"v: 500ms", 500 * time.Millisecond},
		{"v: 1m30s", 90 * time.Second},
		{"v: 24h", 24 * time.Hour},
		{"v: \" 30m \"", 30 * time.Minute},
		{"v: 1.5s", 1500 * time.Millisecond},
		// "0" has no unit but is unambiguous; time.ParseDuration accepts it.
		{"v: 0", 0},
		{"v: 0s", 0},
	}
	for _, tc := range good {
		t.Run(tc.doc, func(t *testing.T) {
			got, err := decode[Duration](tc.doc)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if got.D() != tc.want {
				t.Errorf("got %v, want %v", got.D(), tc.want)
			}
			if got.String() != tc.want.String() {
				t.Errorf("String() = %q, want %q", got.String(), tc.want.String())
			}
		})
	}
	bad := []string{
		"v: 30",     // seconds or minutes?
		"v: \"30\"", // still a bare number
		"v: 1.5",
		"v: -5s",
		"v: -1h",
		"v: 10 s",
		"v: 10sec",
		"v: 1d",
		"v: ten seconds",
		"v: \"\"",
		"v: [10s]",
		"v: {s: 10}",
	}
	for _, doc := range bad {
		t.Run(doc, func(t *testing.T) {
			if got, err := decode[Duration](doc); err == nil {
				t.Errorf("got %v, want an error", got.D())
			}
		})
	}
}

func TestUnmarshalYAML_ErrorsCarryTheLine(t *testing.T) {
	doc := "a: 1\nb: 2\nv: 15XB\n"
	_, err := decode[ByteSize](doc)
	te, ok := err.(*yaml.TypeError)
	if !ok {
		t.Fatalf("error %T %v, want *yaml.TypeError", err, err)
	}
	if len(te.Errors) != 1 || !strings.HasPrefix(te.Errors[0], "line 3: invalid size \"15XB\"") {
		t.Errorf("errors = %q, want one starting with line 3", te.Errors)
	}
	for _, doc := range []string{"x: 0\nv: 30\n", "x: 0\nv: [1s]\n"} {
		_, err := decode[Duration](doc)
		if err == nil || !strings.Contains(err.Error(), "line 2: ") {
			t.Errorf("%q: err = %v, want it to name line 2", doc, err)
		}
	}
	for _, doc := range []string{"x: 0\nv: 5/sec\n", "x: 0\nv: {a: b}\n"} {
		_, err := decode[Rate](doc)
		if err == nil || !strings.Contains(err.Error(), "line 2: ") {
			t.Errorf("%q: err = %v, want it to name line 2", doc, err)
		}
	}
}

func TestUnmarshalYAML_ReportsEveryBadValue(t *testing.T) {
	var out struct {
		A ByteSize `yaml:"a"`
		B Duration `yaml:"b"`
		C Rate     `yaml:"c"`
	}
	err := yaml.Unmarshal([]byte("a: 1XB\nb: 30\nc: 5/sec\n"), &out)
	te, ok := err.(*yaml.TypeError)
	if !ok || len(te.Errors) != 3 {
		t.Fatalf("err = %v, want three type errors (one per line)", err)
	}
}

func TestParseRate(t *testing.T) {
	good := []struct {
		in   string
		want Rate
		per  float64
		str  string
	}{
		{"45/s", Rate{45, time.Second}, 45, "45/s"},
		{"300/m", Rate{300, time.Minute}, 5, "300/m"},
		{"2/h", Rate{2, time.Hour}, 2.0 / 3600, "2/h"},
		{" 45 / s ", Rate{45, time.Second}, 45, "45/s"},
		{"1/s", Rate{1, time.Second}, 1, "1/s"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.PerSecond() != tc.per {
				t.Errorf("PerSecond = %v, want %v", got.PerSecond(), tc.per)
			}
			if got.String() != tc.str {
				t.Errorf("String = %q, want %q", got.String(), tc.str)
			}
			if got.IsZero() {
				t.Error("IsZero on a set rate")
			}
		})
	}
	for _, in := range []string{
		"", "45", "/s", "45/", "5/sec", "5/second", "5/S", "5/d", "5/ms",
		"0/s", "-1/s", "1.5/s", "45/s/s", "x/s", "45 per s", "99999999999999999999/s",
	} {
		t.Run("rejects "+in, func(t *testing.T) {
			if got, err := ParseRate(in); err == nil {
				t.Errorf("ParseRate(%q) = %+v, want an error", in, got)
			}
		})
	}
}

func TestRate_ZeroValue(t *testing.T) {
	var r Rate
	if !r.IsZero() || r.String() != "" || r.PerSecond() != 0 {
		t.Errorf("zero Rate: IsZero %v String %q PerSecond %v", r.IsZero(), r.String(), r.PerSecond())
	}
}

func TestRate_UnmarshalYAML(t *testing.T) {
	got, err := decode[Rate]("v: 45/s")
	if err != nil || got != (Rate{45, time.Second}) {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, doc := range []string{"v: 45", "v: 5/sec", "v: [45/s]", "v: 0/s"} {
		if got, err := decode[Rate](doc); err == nil {
			t.Errorf("%q: got %+v, want an error", doc, got)
		}
	}
}
