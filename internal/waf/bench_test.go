package waf

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"
)

// benchUpstream drains and closes the body as http.Transport would.
var benchUpstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	w.WriteHeader(http.StatusOK)
})

// discardWriter is a minimal ResponseWriter so that the recorder's cost
// does not hide the WAF's.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

func statusOf(w http.ResponseWriter) int {
	if d, ok := w.(*discardWriter); ok {
		return d.status
	}
	return 0
}

func benchRequests(b *testing.B, cfg Config, method, target, ctype string, body []byte) {
	benchHandler(b, mustWAF(b, cfg).Handler(benchUpstream), method, target, ctype, body)
}

func benchHandler(b *testing.B, h http.Handler, method, target, ctype string, body []byte) {
	base := newRequest(method, target, ctype, nil)
	base.Header.Set("Cookie", "JSESSIONID=8F3A1C2B9D7E6F5A4B3C2D1E0F9A8B7C; _ga=GA1.2.1234567890.1700000000")
	base.Header.Set("Authorization", "Basic MTAwMTpBZ2VudFBhc3N3b3JkMSE=")
	rw := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := startCPUClock()
	n := 0
	for b.Loop() {
		n++
		r := *base
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		clear(rw.h)
		h.ServeHTTP(rw, &r)
		if n == 1 && statusOf(rw) >= 400 {
			b.Fatalf("the benchmark request was refused (%d)", statusOf(rw))
		}
	}
	// The machine is shared: process CPU time per request is steadier than
	// wall time under load.
	b.ReportMetric(float64(cpu.elapsed())/float64(n), "cpu-ns/op")
}

type cpuClock struct{ start int64 }

func startCPUClock() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) elapsed() int64 { return processCPU() - c.start }

// processCPU is the user and system CPU time of the process, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

const (
	benchGETTarget = "/finesse/api/User/1001/Dialogs?nocache=1700000000123"
	benchJSON      = `{"reportId":"5A7B3C9D1E","filters":[{"field":"agent","op":"equals","value":"1001"},{"field":"interval","op":"between","value":["2024-05-01T00:00:00Z","2024-05-31T23:59:59Z"]}],"note":"Customer asked about delivery, call back tomorrow","pageSize":100}`
)

func BenchmarkWAF_GET(b *testing.B) {
	benchRequests(b, Config{}, "GET", benchGETTarget, "", nil)
}

func BenchmarkWAF_JSONPost(b *testing.B) {
	benchRequests(b, Config{}, "POST", "/cuic/rest/reports/run", "application/json", []byte(benchJSON))
}

func form64KiB() []byte {
	var sb strings.Builder
	for i := 0; sb.Len() < 64<<10; i++ {
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString("field")
		sb.WriteString(strings.Repeat("x", i%7))
		sb.WriteString("=")
		sb.WriteString(url.QueryEscape("Customer called about the invoice and the delivery window "))
	}
	return []byte(sb.String()[:64<<10])
}

func BenchmarkWAF_Form64KiB(b *testing.B) {
	benchRequests(b, Config{}, "POST", "/desktop/form", "application/x-www-form-urlencoded", form64KiB())
}

func BenchmarkWAF_XMLPut(b *testing.B) {
	benchRequests(b, Config{}, "PUT", "/finesse/api/User/1001", "application/xml", []byte(`<User><state>NOT_READY</state><reasonCodeId>22</reasonCodeId></User>`))
}

// The baseline is the straightforward integration: Coraza's own net/http
// middleware over the stock recommended configuration and CRS (audit
// engine on for relevant requests, response body access on, every phase
// run), on the same requests.
func baseline(b *testing.B) http.Handler {
	b.Helper()
	cw, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(
		"Include @coraza.conf-recommended\nInclude @crs-setup.conf.example\nInclude @owasp_crs/*.conf\nSecRuleEngine On\n"))
	if err != nil {
		b.Fatal(err)
	}
	return txhttp.WrapHandler(cw, benchUpstream)
}

func BenchmarkBaseline_GET(b *testing.B) {
	benchHandler(b, baseline(b), "GET", benchGETTarget, "", nil)
}

func BenchmarkBaseline_JSONPost(b *testing.B) {
	benchHandler(b, baseline(b), "POST", "/cuic/rest/reports/run", "application/json", []byte(benchJSON))
}

func BenchmarkBaseline_Form64KiB(b *testing.B) {
	benchHandler(b, baseline(b), "POST", "/desktop/form", "application/x-www-form-urlencoded", form64KiB())
}

// TestWAF_CostComparison measures, interleaved in one process so that the
// load of a shared machine affects all alike, the CPU time per request of
// this handler and of the baseline, for the three benchmark workloads. It
// runs only with RAMPART_WAF_AB=1.
func TestWAF_CostComparison(t *testing.T) {
	if os.Getenv("RAMPART_WAF_AB") != "1" {
		t.Skip("set RAMPART_WAF_AB=1 to compare CPU per request with the baseline")
	}
	ours := mustWAF(t, Config{}).Handler(benchUpstream)
	cw, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(
		"Include @coraza.conf-recommended\nInclude @crs-setup.conf.example\nInclude @owasp_crs/*.conf\nSecRuleEngine On\n"))
	if err != nil {
		t.Fatal(err)
	}
	base := txhttp.WrapHandler(cw, benchUpstream)
	workloads := []struct {
		name, method, target, ctype string
		body                        []byte
		n                           int
	}{
		{"GET", "GET", benchGETTarget, "", nil, 200},
		{"JSONPost", "POST", "/cuic/rest/reports/run", "application/json", []byte(benchJSON), 100},
		{"Form64KiB", "POST", "/desktop/form", "application/x-www-form-urlencoded", form64KiB(), 2},
	}
	for _, wl := range workloads {
		run := func(h http.Handler) float64 {
			rw := &discardWriter{h: http.Header{}}
			req := newRequest(wl.method, wl.target, wl.ctype, nil)
			req.Header.Set("Cookie", "JSESSIONID=8F3A1C2B9D7E6F5A4B3C2D1E0F9A8B7C; _ga=GA1.2.1234567890.1700000000")
			req.Header.Set("Authorization", "Basic MTAwMTpBZ2VudFBhc3N3b3JkMSE=")
			c := startCPUClock()
			for range wl.n {
				r := *req
				if wl.body != nil {
					r.Body = io.NopCloser(bytes.NewReader(wl.body))
					r.ContentLength = int64(len(wl.body))
				}
				h.ServeHTTP(rw, &r)
			}
			return float64(c.elapsed()) / float64(wl.n)
		}
		var o, bl []float64
		for range 7 {
			o = append(o, run(ours))
			bl = append(bl, run(base))
		}
		slices.Sort(o)
		slices.Sort(bl)
		t.Logf("%-10s cpu-ns/op: ours %.0f, baseline %.0f (median of 7 interleaved rounds)", wl.name, o[3], bl[3])
	}
}
