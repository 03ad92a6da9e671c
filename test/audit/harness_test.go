// Package audit runs `rampart audit` end to end: against rampart itself
// (which must pass every check) and against a deliberately weak nginx in
// front of a Tomcat-like upstream (whose weaknesses the audit must find).
package audit

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/demo"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/server"
)

// rampartConfig is demo-like: one site, a deny entry, two routes, every
// other default (rate limits, handshake rate, WAF) left as shipped.
const rampartConfig = `
{{EXTRA}}
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
log: {access: off, security: "{{DIR}}/security.log"}
tls:
  cert: "{{DIR}}/site.pem"
  key: "{{DIR}}/site-key.pem"
sites:
  - host: app.test
    upstream:
      targets: ["{{UP}}"]
    deny:
      - prefix: /admin/
        status: 403
    routes:
      - exact: /
      - prefix: /api/
        methods: [GET, POST]
`

// rampartEnv is a running rampart in front of the demo upstream.
type rampartEnv struct {
	addr   string // host:port of the public listener
	caFile string // PEM of the CA that signed its certificate
	dir    string
}

// startRampart runs rampart in-process; extra is prepended to the config
// (top-level keys).
func startRampart(t *testing.T, extra string) *rampartEnv {
	t.Helper()
	dir := t.TempDir()
	up := httptest.NewServer(demo.Upstream())
	t.Cleanup(up.Close)
	ca, err := selfsigned.NewCA("audit test CA")
	must(t, err)
	cert, key, err := ca.Leaf("app.test", "127.0.0.1")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "site.pem"), cert, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "site-key.pem"), key, 0o600))
	caFile := filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(caFile, ca.CertPEM, 0o644))
	cfgFile := filepath.Join(dir, "rampart.yaml")
	cfgText := strings.NewReplacer("{{DIR}}", dir, "{{UP}}", up.URL, "{{EXTRA}}", extra).Replace(rampartConfig)
	must(t, os.WriteFile(cfgFile, []byte(cfgText), 0o644))
	cfg, err := config.Load(cfgFile)
	must(t, err)
	srv, err := server.New(context.Background(), cfg)
	must(t, err)
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &rampartEnv{addr: srv.Addrs()[0].String(), caFile: caFile, dir: dir}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}
