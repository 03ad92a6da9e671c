package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/state"
)

const benchConfig = `
listen: "127.0.0.1:0"
admin: {listen: "off"}
sites:
  - host: app.test
    upstream: {targets: ["http://127.0.0.1:9"]}
    deny: [{prefix: /admin/}]
    routes:
      - exact: /
      - prefix: /api/
        methods: [GET, POST]
      - prefix: /static/
      - regex: '^/report/[0-9]+$'
      - exact: /ws
        websocket: true
`

func benchPipeline(tb testing.TB) *Pipeline {
	ca, _ := selfsigned.NewCA("bench")
	cert, key, _ := ca.Leaf("app.test")
	cfg, err := config.ParseWithCert("bench.yaml", []byte(benchConfig), &config.CertPEM{Cert: cert, Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Build(context.Background(), cfg, &Shared{Store: state.NewMemory(state.MemoryOptions{})})
	if err != nil {
		tb.Fatal(err)
	}
	// Measure the stages before the proxy: the route's chain answers at once.
	for _, s := range p.all {
		for _, rt := range s.routes {
			rt.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
		}
	}
	return p
}

// The host gate and route match run for every request, refusals included,
// so they must not allocate.
func TestHostGateAndRouteMatch_DoNotAllocate(t *testing.T) {
	p := benchPipeline(t)
	r := httptest.NewRequest("GET", "https://app.test/api/users/42", nil)
	info := &reqinfo.Info{}
	allocs := testing.AllocsPerRun(200, func() {
		s, _ := p.hostGate(r, nil)
		if s == nil {
			t.Fatal("no site")
		}
		if rt, status, _ := s.route(r, info); rt == nil || status != 0 {
			t.Fatal("no route")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
}

func BenchmarkPipeline_BeforeProxy(b *testing.B) {
	p := benchPipeline(b)
	for _, path := range []string{"/api/users/42", "/report/123", "/admin/x", "/nothing"} {
		b.Run(path, func(b *testing.B) {
			r := httptest.NewRequest("GET", "https://app.test"+path, nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				p.ServeHTTP(w, r)
			}
		})
	}
}

func BenchmarkHostGateAndRoute(b *testing.B) {
	p := benchPipeline(b)
	r := httptest.NewRequest("GET", "https://app.test/api/users/42", nil)
	info := &reqinfo.Info{}
	b.ReportAllocs()
	for b.Loop() {
		s, _ := p.hostGate(r, nil)
		_, _, _ = s.route(r, info)
	}
}

type discardWriter struct {
	h http.Header
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
