package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Traffic from the upstream alone keeps a tunnel open: a client that only
// listens (a notification feed) to an upstream sending every 700 ms is not
// closed by a 1 s websocket_idle_timeout.
func TestWebSocket_UpstreamTrafficAloneKeepsTheTunnelOpen(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(r.Context())
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(700 * time.Millisecond):
			}
			if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	cfg := strings.Replace(boundsConfig, "RAW", strings.TrimPrefix(up.URL, "http://"), 1)
	cfg = strings.Replace(cfg, "        websocket: true\n", "        websocket: true\n        websocket_idle_timeout: 1s\n", 1)
	e := start(t, cfg)
	c := wsDial(t, e, "/ws")
	start := time.Now()
	n := 0
	for time.Since(start) < 4*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _, err := c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %v and %d pings: %v", time.Since(start), n, err)
		}
		n++
	}
}
