package waf

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// benchUpstream drains and closes the body as http.Transport would.
var benchUpstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	w.WriteHeader(http.StatusOK)
})

// discardWriter is a minimal ResponseWriter so that the recorder's cost
// does not hide the WAF's.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func benchRequests(b *testing.B, cfg Config, method, target, ctype string, body []byte) {
	w := mustWAF(b, cfg)
	h := w.Handler(benchUpstream)
	base := newRequest(method, target, ctype, nil)
	base.Header.Set("Cookie", "JSESSIONID=8F3A1C2B9D7E6F5A4B3C2D1E0F9A8B7C; _ga=GA1.2.1234567890.1700000000")
	base.Header.Set("Authorization", "Basic MTAwMTpBZ2VudFBhc3N3b3JkMSE=")
	rw := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := *base
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		clear(rw.h)
		h.ServeHTTP(rw, &r)
	}
}

func BenchmarkWAF_GET(b *testing.B) {
	benchRequests(b, Config{}, "GET", "/finesse/api/User/1001/Dialogs?nocache=1700000000123", "", nil)
}

func BenchmarkWAF_JSONPost(b *testing.B) {
	body := []byte(`{"reportId":"5A7B3C9D1E","filters":[{"field":"agent","op":"equals","value":"1001"},{"field":"interval","op":"between","value":["2024-05-01T00:00:00Z","2024-05-31T23:59:59Z"]}],"note":"Customer asked about delivery, call back tomorrow","pageSize":100}`)
	benchRequests(b, Config{}, "POST", "/cuic/rest/reports/run", "application/json", body)
}

func BenchmarkWAF_Form64KiB(b *testing.B) {
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
	body := []byte(sb.String()[:64<<10])
	benchRequests(b, Config{}, "POST", "/desktop/form", "application/x-www-form-urlencoded", body)
}

func BenchmarkWAF_XMLPut(b *testing.B) {
	benchRequests(b, Config{}, "PUT", "/finesse/api/User/1001", "application/xml", []byte(`<User><state>NOT_READY</state><reasonCodeId>22</reasonCodeId></User>`))
}
