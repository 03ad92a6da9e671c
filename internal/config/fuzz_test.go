package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config decoder: it must never
// panic, and every error it returns must name the file.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		validYAML,
		minimalYAML,
		"",
		"---\n",
		"null",
		"- a\n- b\n",
		minimalYAML + "---\n" + minimalYAML,
		minimalYAML + "...\ngarbage: [\n",
		strings.Replace(minimalYAML, "routes:", "rotes:", 1),
		strings.Replace(minimalYAML, "prefix: /", "regex: ^/(", 1),
		"tls:\n  versions: \"1.2\"\n",
		"tls: {versions: [\"1.0\", 1.1, [x]]}\nlimits: {max_body: -1, idle_timeout: 30}\n",
		"sites:\n  - host: [a]\n    upstream: {targets: [10.0.0.5:80, \"http://:0\"]}\n    routes: [{exact: a, prefix: b}]\n",
		"a: &a [*a, *a]\nb: *a\n",
		"sites: &s\n  - host: a.example\n    upstream: {targets: [\"http://127.0.0.1:1\"]}\n    routes: [{prefix: /}]\nlisteners: *s\n",
		"{\"tls\": {\"cert\": \"c\", \"key\": \"k\"}, \"sites\": [{\"host\": \"x\"}]}",
		"\t\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			if cfg.File != "fuzz.yaml" || len(cfg.SHA256) != 64 {
				t.Fatalf("File %q SHA256 %q", cfg.File, cfg.SHA256)
			}
			if len(cfg.Sites) == 0 {
				t.Fatal("a config without sites loaded")
			}
			_ = cfg.Warnings()
			return
		}
		var es Errors
		if !errors.As(err, &es) {
			t.Fatalf("error %T is not config.Errors: %v", err, err)
		}
		if len(es) == 0 {
			t.Fatal("empty Errors")
		}
		for _, e := range es {
			if e == nil {
				t.Fatal("nil *Error in Errors")
			}
			if e.File != "fuzz.yaml" {
				t.Fatalf("error without the file: %+v", *e)
			}
			if e.Line < 0 {
				t.Fatalf("negative line: %+v", *e)
			}
			_ = e.Error()
		}
	})
}
