package waf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-proxy/rampart/internal/units"
)

func TestConfig_DecodesYAML(t *testing.T) {
	src := `
waf:
  mode: detect
  paranoia: 2
  inbound_threshold: 7
  outbound_threshold: 5
  response_inspection: true
  body_limit: 2MiB
  over_limit: partial
  exclusions:
    - {rules: [942100], routes: [/finesse/api/], fields: ["ARGS:note", "ARGS_POST:note"]}
    - rules: [920350]
  rules_file: extra.conf
`
	var doc struct {
		WAF Config `yaml:"waf"`
	}
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Mode: ModeDetect, Paranoia: 2, InboundThreshold: 7, OutboundThreshold: 5,
		ResponseInspection: boolPtr(true), BodyLimit: 2 << 20, OverLimit: OverLimitPartial,
		Exclusions: []Exclusion{
			{Rules: []int{942100}, Routes: []string{"/finesse/api/"}, Fields: []string{"ARGS:note", "ARGS_POST:note"}},
			{Rules: []int{920350}},
		},
		RulesFile: "extra.conf",
	}
	if !reflect.DeepEqual(doc.WAF, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", doc.WAF, want)
	}
	if err := doc.WAF.Validate(); err != nil {
		t.Error(err)
	}
}

func TestConfig_Defaults(t *testing.T) {
	d := Defaults()
	if d.Mode != ModeBlock || d.Paranoia != 1 || d.InboundThreshold != 5 || d.OutboundThreshold != 4 ||
		d.ResponseInspection == nil || *d.ResponseInspection || d.BodyLimit != units.ByteSize(1<<20) ||
		d.OverLimit != OverLimitReject || d.Exclusions != nil || d.RulesFile != "" {
		t.Errorf("Defaults() = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
}

func TestConfig_MergeRouteOverridesSiteFieldByField(t *testing.T) {
	site := Defaults().Merge(&Config{
		Mode: ModeDetect, Paranoia: 2, ResponseInspection: boolPtr(true),
		Exclusions: []Exclusion{{Rules: []int{1}}}, RulesFile: "site.conf",
	})
	cases := []struct {
		name  string
		route *Config
		check func(c Config) bool
	}{
		{"Nil", nil, func(c Config) bool { return reflect.DeepEqual(c, site) }},
		{"Empty", &Config{}, func(c Config) bool { return reflect.DeepEqual(c, site) }},
		{"Mode", &Config{Mode: ModeBlock}, func(c Config) bool { return c.Mode == ModeBlock && c.Paranoia == 2 }},
		{"Paranoia", &Config{Paranoia: 4}, func(c Config) bool { return c.Paranoia == 4 && c.Mode == ModeDetect }},
		{"Thresholds", &Config{InboundThreshold: 10, OutboundThreshold: 8}, func(c Config) bool {
			return c.InboundThreshold == 10 && c.OutboundThreshold == 8
		}},
		{"ResponseInspectionFalse", &Config{ResponseInspection: boolPtr(false)}, func(c Config) bool {
			return !*c.ResponseInspection && c.Paranoia == 2
		}},
		{"BodyLimit", &Config{BodyLimit: 64 << 10, OverLimit: OverLimitPartial}, func(c Config) bool {
			return c.BodyLimit == 64<<10 && c.OverLimit == OverLimitPartial
		}},
		{"ExclusionsReplace", &Config{Exclusions: []Exclusion{{Rules: []int{2}}}}, func(c Config) bool {
			return len(c.Exclusions) == 1 && c.Exclusions[0].Rules[0] == 2
		}},
		{"ExclusionsCleared", &Config{Exclusions: []Exclusion{}}, func(c Config) bool { return len(c.Exclusions) == 0 }},
		{"RulesFile", &Config{RulesFile: "route.conf"}, func(c Config) bool { return c.RulesFile == "route.conf" }},
	}
	for _, c := range cases {
		got := site.Merge(c.route)
		if !c.check(got) {
			t.Errorf("%s: merged %+v", c.name, got)
		}
	}
	// Merge does not alias the override's pointer.
	ri := boolPtr(true)
	got := site.Merge(&Config{ResponseInspection: ri})
	*ri = false
	if !*got.ResponseInspection {
		t.Error("Merge kept the override's pointer")
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		err  string // substring; "" means valid
	}{
		{"Empty", Config{}, ""},
		{"Full", Defaults(), ""},
		{"BadMode", Config{Mode: "monitor"}, "waf.mode"},
		{"ParanoiaHigh", Config{Paranoia: 5}, "waf.paranoia"},
		{"ParanoiaNegative", Config{Paranoia: -1}, "waf.paranoia"},
		{"NegativeThreshold", Config{InboundThreshold: -1}, "inbound_threshold"},
		{"NegativeOutbound", Config{OutboundThreshold: -3}, "outbound_threshold"},
		{"HugeBody", Config{BodyLimit: 1 << 30}, "body_limit"},
		{"BadOverLimit", Config{OverLimit: "truncate"}, "over_limit"},
		{"ExclusionNoRules", Config{Exclusions: []Exclusion{{Fields: []string{"ARGS:a"}}}}, "list at least one"},
		{"ExclusionZeroRule", Config{Exclusions: []Exclusion{{Rules: []int{0}}}}, "not a rule id"},
		{"ExclusionReservedRule", Config{Exclusions: []Exclusion{{Rules: []int{99001}}}}, "rampart generates"},
		{"RouteNoSlash", Config{Exclusions: []Exclusion{{Rules: []int{1}, Routes: []string{"finesse"}}}}, "starting with /"},
		{"RouteQuote", Config{Exclusions: []Exclusion{{Rules: []int{1}, Routes: []string{`/a" "id:1`}}}}, "routes"},
		{"RouteMacro", Config{Exclusions: []Exclusion{{Rules: []int{1}, Routes: []string{`/%{tx.x}`}}}}, "routes"},
		{"FieldUnknownCollection", Config{Exclusions: []Exclusion{{Rules: []int{1}, Fields: []string{"TX:score"}}}}, "collection"},
		{"FieldEmptyKey", Config{Exclusions: []Exclusion{{Rules: []int{1}, Fields: []string{"ARGS:"}}}}, "empty name"},
		{"FieldInjection", Config{Exclusions: []Exclusion{{Rules: []int{1}, Fields: []string{"ARGS:a,ctl:ruleEngine=Off"}}}}, "may not contain"},
		{"FieldRegex", Config{Exclusions: []Exclusion{{Rules: []int{1}, Fields: []string{"REQUEST_COOKIES:/^_ga/"}}}}, ""},
		{"FieldWholeCollection", Config{Exclusions: []Exclusion{{Rules: []int{1}, Fields: []string{"XML:/*"}}}}, ""},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: unexpected error %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.err)
		}
	}
}

func TestDirectives_PlaceExclusionsAndMode(t *testing.T) {
	cfg := Defaults().Merge(&Config{Mode: ModeDetect, Paranoia: 3, Exclusions: []Exclusion{
		{Rules: []int{942100, 942200}, Routes: []string{"/a/", "/b/"}, Fields: []string{"ARGS:note"}},
		{Rules: []int{920350}},
		{Rules: []int{941100}, Fields: []string{"REQUEST_COOKIES:x"}},
		{Rules: []int{932235}, Routes: []string{"/c/"}},
	}})
	d := directives(cfg, "", "SecRuleRemoveById 1234\nSecRule ARGS \"@rx x\" \\\n  \"id:5,phase:2,deny\"\n")
	crs := strings.Index(d, "Include @owasp_crs/*.conf")
	mustBefore := []string{
		`setvar:tx.blocking_paranoia_level=3`,
		`"@beginsWith /a/" "id:99000,`, `"@beginsWith /b/" "id:99001,`,
		`ctl:ruleRemoveTargetById=942100;ARGS:note,ctl:ruleRemoveTargetById=942200;ARGS:note`,
		`"@beginsWith /c/" "id:99002,phase:1,pass,nolog,t:none,t:urlDecodeUni,t:normalisePath,ctl:ruleRemoveById=932235"`,
		"SecRule ARGS \"@rx x\" \\\n  \"id:5,phase:2,deny\"",
	}
	mustAfter := []string{
		"SecRuleRemoveById 911100", "SecRuleRemoveById 920350",
		`SecRuleUpdateTargetById 941100 "!REQUEST_COOKIES:x"`, "SecRuleRemoveById 1234",
	}
	for _, s := range mustBefore {
		if i := strings.Index(d, s); i < 0 || i > crs {
			t.Errorf("%q not before the CRS rules:\n%s", s, d)
		}
	}
	for _, s := range mustAfter {
		if i := strings.Index(d, s); i < crs {
			t.Errorf("%q not after the CRS rules:\n%s", s, d)
		}
	}
	if !strings.HasSuffix(d, "SecRuleEngine DetectionOnly\n") {
		t.Errorf("the engine mode must come last:\n%s", d)
	}
}

func TestSet_BuildsEachDistinctConfigOnce(t *testing.T) {
	set := NewSet()
	dir := t.TempDir()
	a1, err := set.Get(Config{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Equal after defaults are applied: same WAF.
	a2, _ := set.Get(Defaults(), dir)
	a3, _ := set.Get(Config{Paranoia: 1, Mode: ModeBlock}, dir)
	if a1 != a2 || a1 != a3 {
		t.Error("equal configurations built more than once")
	}
	b, _ := set.Get(Config{Paranoia: 2}, dir)
	if b == a1 {
		t.Error("different configurations share a WAF")
	}
	// Rules files: keyed by content, not by name.
	_ = os.WriteFile(filepath.Join(dir, "one.conf"), []byte("# same\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "two.conf"), []byte("# same\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "three.conf"), []byte("# different\n"), 0o600)
	r1, _ := set.Get(Config{RulesFile: "one.conf"}, dir)
	r2, _ := set.Get(Config{RulesFile: filepath.Join(dir, "two.conf")}, "/elsewhere")
	r3, _ := set.Get(Config{RulesFile: "three.conf"}, dir)
	if r1 != r2 || r1 == r3 || r1 == a1 {
		t.Error("rules files not keyed by their content")
	}
	// Off: cheap, shared whatever the other fields say.
	o1, _ := set.Get(Config{Mode: ModeOff}, dir)
	o2, _ := set.Get(Config{Mode: ModeOff, Paranoia: 4}, dir)
	if o1 != o2 || o1.Mode() != ModeOff {
		t.Error("mode off not shared")
	}
	if n := set.Len(); n != 5 {
		t.Errorf("Len() = %d, want 5", n)
	}
	// Invalid configurations are refused before building.
	if _, err := set.Get(Config{Paranoia: 9}, dir); err == nil {
		t.Error("invalid config accepted")
	}
}

func TestSet_ConcurrentGetBuildsOnce(t *testing.T) {
	set := NewSet()
	var wg sync.WaitGroup
	got := make([]*WAF, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = set.Get(Config{Paranoia: 1, InboundThreshold: 6}, "")
		}()
	}
	wg.Wait()
	for _, w := range got {
		if w == nil || w != got[0] {
			t.Fatal("concurrent Get returned different or nil WAFs")
		}
	}
}
