// Package demo is the sample upstream behind `rampart demo`: a tiny
// internal application with a public page, a JSON API, an admin page that
// rampart must never expose, and a WebSocket echo.
package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// Upstream returns the sample application's handler.
func Upstream() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "demo-app/1.0 (internal)") // rampart strips this
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>demo</title><h1>Hello from the internal app</h1><p>path %s</p>\n", r.URL.Path)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"path": r.URL.Path, "method": r.Method,
			"x_forwarded_for": r.Header.Get("X-Forwarded-For"), "request_id": r.Header.Get("X-Request-ID"),
		})
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "SECRET ADMIN PAGE: you should never see this through rampart")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	return mux
}

// Config is the demo's rampart config; %s is replaced by the upstream URL
// and the listen address.
const Config = `# rampart demo config (certificate generated in memory)
listen: %q
admin: {listen: "127.0.0.1:0"}
log: {access: stdout, security: stderr}
sites:
  - host: localhost
    upstream:
      targets: [%q]
    deny:
      - prefix: /admin/
        status: 403
    routes:
      - exact: /
      - prefix: /api/
        methods: [GET, POST]
      - exact: /ws
        websocket: true
`

// Start serves the sample application on a loopback port.
func Start() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: Upstream()}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
