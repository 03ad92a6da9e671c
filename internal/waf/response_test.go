package waf

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-proxy/rampart/internal/observe/observetest"
)

const sqlErrorPage = `<html><body>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '1'' at line 1</body></html>`

func respondWith(status int, ctype, body string, extra map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", ctype)
		for k, v := range extra {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func TestWAF_ResponseInspectionBlocksDataLeak(t *testing.T) {
	w := mustWAF(t, Config{ResponseInspection: boolPtr(true)})
	log := observetest.Security(t)
	r := newRequest("GET", "/cuic/rest/reports?id=5", "", nil)
	rec := serve(w.Handler(respondWith(500, "text/html", sqlErrorPage, map[string]string{"X-Upstream-Secret": "s"})), r)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "SQL syntax") || rec.Header().Get("X-Upstream-Secret") != "" {
		t.Errorf("the upstream response leaked: %v %q", rec.Header(), rec.Body.String())
	}
	if !strings.Contains(rec.Body.String(), "req-") {
		t.Errorf("refusal without request id: %q", rec.Body.String())
	}
	if ev := log.String(); !strings.Contains(ev, `"phase":"response"`) || !strings.Contains(ev, "951") {
		t.Errorf("security event: %s", ev)
	}

	// Without response inspection the same response passes.
	plain := mustWAF(t, Config{})
	rec = serve(plain.Handler(respondWith(500, "text/html", sqlErrorPage, nil)), newRequest("GET", "/cuic/rest/reports?id=5", "", nil))
	if rec.Code != 500 || rec.Body.String() != sqlErrorPage {
		t.Errorf("response inspection off: status %d", rec.Code)
	}
}

func TestWAF_ResponseInspectionPassesCleanResponses(t *testing.T) {
	w := mustWAF(t, Config{ResponseInspection: boolPtr(true), BodyLimit: 64 << 10})
	big := strings.Repeat("<p>report row</p>\n", 10000) // over the 64 KiB limit: inspected in part, streamed
	cases := []struct {
		name, ctype, body string
		status            int
	}{
		{"XML", "application/xml", `<User><state>READY</state></User>`, 200},
		{"Created", "application/json", `{"id":17}`, 201},
		{"LargeHTML", "text/html", big, 200},
		{"Image", "image/png", "\x89PNG\r\n\x1a\nbinary", 200},
		{"Empty", "text/plain", "", 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(w.Handler(respondWith(c.status, c.ctype, c.body, map[string]string{"X-Trace": "abc"})),
				newRequest("GET", "/finesse/api/User/1001", "", nil))
			if rec.Code != c.status || rec.Header().Get("X-Trace") != "abc" || rec.Body.String() != c.body {
				t.Errorf("status %d, header %q, body %d bytes; want %d and the upstream's response", rec.Code, rec.Header().Get("X-Trace"), rec.Body.Len(), c.status)
			}
		})
	}
}

func TestWAF_ResponseInspectionDetectMode(t *testing.T) {
	w := mustWAF(t, Config{Mode: ModeDetect, ResponseInspection: boolPtr(true)})
	log := observetest.Security(t)
	rec := serve(w.Handler(respondWith(200, "text/html", sqlErrorPage, nil)), newRequest("GET", "/cuic/rest/reports", "", nil))
	if rec.Code != 200 || rec.Body.String() != sqlErrorPage {
		t.Errorf("detect mode must forward the response: %d", rec.Code)
	}
	if ev := log.String(); !strings.Contains(ev, `"reason":"detect"`) || !strings.Contains(ev, `"phase":"response"`) {
		t.Errorf("security event: %s", ev)
	}
}

func TestWAF_ResponseInspectionKeepsFlushing(t *testing.T) {
	w := mustWAF(t, Config{ResponseInspection: boolPtr(true)})
	flushed := make(chan struct{})
	h := w.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(rw, "event: one\n\n")
		if err := http.NewResponseController(rw).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		<-flushed
		_, _ = io.WriteString(rw, "event: two\n\n")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != "event: one\n\n" {
		t.Fatalf("first event not delivered before the handler finished: %q %v", buf[:n], err)
	}
	close(flushed)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "event: two\n\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestWAF_WebSocketHandshakeInspectedAndHijackable(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		_ = c.Write(ctx, typ, msg)
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	for _, ri := range []bool{false, true} {
		w := mustWAF(t, Config{ResponseInspection: boolPtr(ri)})
		srv := httptest.NewServer(w.Handler(echo))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)

		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/finesse/notifications?user=1001", nil)
		if err != nil {
			t.Fatalf("response_inspection=%v: dial: %v", ri, err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil || string(msg) != "hello" {
			t.Errorf("response_inspection=%v: echo %q %v", ri, msg, err)
		}
		_ = c.Close(websocket.StatusNormalClosure, "")

		// An attack in the handshake is refused like any request.
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/finesse/notifications?user=1%27%20OR%20%271%27%3D%271", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("response_inspection=%v: attack in the handshake: %v %v", ri, resp, err)
		}
		cancel()
		srv.Close()
	}
}

func TestWAF_ResponseInspectorAllowsHijack(t *testing.T) {
	w := mustWAF(t, Config{ResponseInspection: boolPtr(true)})
	h := w.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := rw.(http.Hijacker); !ok {
			t.Error("the response writer hides http.Hijacker")
		}
		conn, brw, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = brw.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/raw")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hijacked" {
		t.Errorf("body %q", body)
	}
}
