package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The upstream round trip of a small GET on the two paths, against a
// net/http upstream on loopback answering 200 bytes.
//
//	go test -run - -bench Upstream -benchmem ./internal/proxy/
func BenchmarkUpstream_Direct(b *testing.B) { benchUpstream(b, true) }

func BenchmarkUpstream_Transport(b *testing.B) { benchUpstream(b, false) }

func benchUpstream(b *testing.B, direct bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("x", 200)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	p := &directPool{
		dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		max:         16,
		idleTimeout: time.Minute,
	}
	defer p.close()
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	defer tr.CloseIdleConnections()
	buf := make([]byte, 1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/small", nil)
			var resp *http.Response
			var err error
			if direct {
				resp, err = p.roundTrip(req, 5*time.Second)
			} else {
				resp, err = tr.RoundTrip(req)
			}
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
		}
	})
}
