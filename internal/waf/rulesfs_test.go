package waf

import (
	"bytes"
	"io/fs"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// TestRulesFS_DropsOnlyLogdata checks that every CRS rule file read
// through rulesFS has lost its logdata actions and nothing else: the same
// rule ids, the same lines otherwise.
func TestRulesFS_DropsOnlyLogdata(t *testing.T) {
	files, err := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	if err != nil || len(files) < 20 {
		t.Fatalf("CRS rule files: %v, %v", files, err)
	}
	dropped := 0
	for _, name := range files {
		orig, err := fs.ReadFile(coreruleset.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(rulesFS, name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(got, []byte("logdata:")) {
			t.Errorf("%s: a logdata action is left", name)
		}
		if a, b := bytes.Count(orig, []byte("id:")), bytes.Count(got, []byte("id:")); a != b {
			t.Errorf("%s: %d rule ids, %d after", name, a, b)
		}
		ol, gl := bytes.Split(orig, []byte("\n")), bytes.Split(got, []byte("\n"))
		dropped += len(ol) - len(gl)
		for i, j := 0, 0; i < len(ol); i++ {
			if j < len(gl) && bytes.Equal(ol[i], gl[j]) {
				j++
				continue
			}
			if !bytes.Contains(ol[i], []byte("logdata:'")) {
				t.Errorf("%s:%d: line %q changed or lost", name, i+1, ol[i])
				break
			}
		}
	}
	if dropped < 300 {
		t.Errorf("%d logdata lines dropped; CRS 4.25 has 327", dropped)
	}
	// Files other than the rules are read as they are.
	a, _ := fs.ReadFile(coreruleset.FS, "@crs-setup.conf.example")
	b, _ := fs.ReadFile(rulesFS, "@crs-setup.conf.example")
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the CRS setup file was changed")
	}
}
