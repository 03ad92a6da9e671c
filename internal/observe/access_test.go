package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// hostile holds what a client controls and the access log must still
// encode as valid JSON: quotes, backslashes, control characters, HTML,
// line separators and invalid UTF-8.
const hostile = "a\"b\\c\nd\re\tf\x01g</script>&h\u2028i\u2029j\xffk\xc3l é ✓"

func accessRequest() (*http.Request, *reqinfo.Info) {
	r := httptest.NewRequest("GET", "/x", nil)
	r.Host = "app.test" + hostile
	info := &reqinfo.Info{
		ID: "req-1", Start: time.Now().Add(-1234 * time.Microsecond),
		Client: netip.MustParseAddr("2001:db8::7"), Path: "/api/" + hostile,
		Route: "/api/", Upstream: "127.0.0.1:8080", TLSVersion: "1.3", CacheState: "hit",
	}
	return r.WithContext(reqinfo.With(r.Context(), info)), info
}

// slogLine is the access line as slog's JSONHandler writes it, the format
// the access log has always had.
func slogLine(r *http.Request, info *reqinfo.Info, status int, n int64, now time.Time) []byte {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("request_id", info.ID), slog.String("client", addrString(info)),
		slog.String("host", r.Host), slog.String("method", r.Method), slog.String("path", info.Path),
		slog.String("route", info.Route), slog.Int("status", status), slog.Int64("bytes", n),
		slog.Float64("duration_ms", float64(now.Sub(info.Start).Microseconds())/1000),
		slog.String("upstream", info.Upstream), slog.String("tls", info.TLSVersion), slog.String("cache", info.CacheState))
	return buf.Bytes()
}

func TestAccessLine_IsTheLineSlogWrites(t *testing.T) {
	r, info := accessRequest()
	var buf bytes.Buffer
	now := time.Now()
	accessLog{w: &buf}.write(r, info, 200, 20480, now)
	got := buf.Bytes()
	want := slogLine(r, info, 200, 20480, now)
	// slog's time is taken inside the handler; everything after it must
	// be byte for byte the same.
	cut := func(b []byte) []byte { return b[bytes.Index(b, []byte(`"level"`)):] }
	if !bytes.Equal(cut(got), cut(want)) {
		t.Fatalf("access line differs from slog's\n got %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got)
	}
	if m["host"] != "app.test"+string(bytes.ToValidUTF8([]byte(hostile), []byte("\ufffd"))) || m["client"] != "2001:db8::7" || m["duration_ms"] != float64(now.Sub(info.Start).Microseconds())/1000 {
		t.Fatalf("decoded %v", m)
	}
	if ts, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil || !ts.Equal(now) {
		t.Fatalf("time %v (%v), want %v", m["time"], err, now)
	}
	if got[len(got)-1] != '\n' || bytes.Count(got, []byte("\n")) != 1 {
		t.Fatalf("want exactly one line: %q", got)
	}
}

func TestAccessLine_OffEncodesNothing(t *testing.T) {
	r, _ := accessRequest()
	o := New(io.Discard, io.Discard)
	if !o.access.off {
		t.Fatal("access log to io.Discard should be off")
	}
	if n := testing.AllocsPerRun(100, func() { o.Access(r, 200, 1) }); n != 0 {
		t.Fatalf("%v allocations with the access log off", n)
	}
}

func BenchmarkAccessLine(b *testing.B) {
	r, info := accessRequest()
	b.Run("rampart", func(b *testing.B) {
		a := accessLog{w: io.Discard}
		b.ReportAllocs()
		for b.Loop() {
			a.write(r, info, 200, 20480, time.Now())
		}
	})
	b.Run("slog", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = slogLine(r, info, 200, 20480, time.Now())
		}
	})
}

// FuzzAccessLine checks that any host and path a client can send are
// encoded exactly as slog encodes them.
func FuzzAccessLine(f *testing.F) {
	f.Add("app.test", "/api/x")
	f.Add(hostile, "\x00\x7f\u2028\xed\xa0\x80")
	f.Fuzz(func(t *testing.T, host, path string) {
		r, info := accessRequest()
		r.Host, info.Path = host, path
		now := time.Now()
		var buf bytes.Buffer
		accessLog{w: &buf}.write(r, info, 404, 0, now)
		got, want := buf.Bytes(), slogLine(r, info, 404, 0, now)
		cut := func(b []byte) []byte { return b[bytes.Index(b, []byte(`"level"`)):] }
		if !bytes.Equal(cut(got), cut(want)) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

func TestTruncate(t *testing.T) {
	if got := Truncate("héllo", 2); got != "h…" {
		t.Errorf("truncate on a rune boundary: %q", got)
	}
	if got := Truncate("short", 100); got != "short" {
		t.Errorf("%q", got)
	}
}

func TestTunnelEndLine_IsJSONWithTheFigures(t *testing.T) {
	_, info := accessRequest()
	var buf bytes.Buffer
	now := time.Now()
	accessLog{w: &buf}.tunnelEnd(info, "app.test\"\n", "idle", 1500*time.Millisecond, 1234, 56789, now)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.Bytes())
	}
	want := map[string]any{"msg": "websocket-end", "level": "INFO", "request_id": info.ID, "host": "app.test\"\n", "path": strings.ToValidUTF8(info.Path, "\ufffd"),
		"route": info.Route, "upstream": info.Upstream, "ended_by": "idle", "open_ms": 1500.0, "bytes_from_client": 1234.0, "bytes_to_client": 56789.0, "client": "2001:db8::7"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Errorf("want exactly one line: %q", buf.Bytes())
	}
	var off bytes.Buffer
	accessLog{w: &off, off: true}.tunnelEnd(info, "h", "client", time.Second, 1, 1, now)
	if off.Len() != 0 {
		t.Errorf("access log off wrote %q", off.Bytes())
	}
}
