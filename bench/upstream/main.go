// Command upstream is the internal application behind every proxy in the
// load benchmark: plain HTTP/1.1 on loopback, keepalive on.
//
//	GET|POST /api/small     200-byte JSON (a POST body is read and dropped)
//	GET      /static/asset.js  20 KiB, ETag, Last-Modified, Cache-Control: public, max-age=300
//	GET      /ws            WebSocket echo
//	GET      /__stats       requests served per path (for the harness, never proxied)
//
// It prints "listening ADDR" on stdout once it accepts connections.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// SmallSize and AssetSize are the body sizes the scenarios name.
const (
	SmallSize = 200
	AssetSize = 20 << 10
)

type counters struct {
	small, asset, assetNotModified, ws, wsOpen atomic.Int64
}

func smallBody() []byte {
	b := []byte(`{"id":42,"name":"rampart-bench","status":"ok","items":[1,2,3,4,5],"note":"`)
	tail := []byte(`"}` + "\n")
	pad := SmallSize - len(b) - len(tail)
	b = append(b, bytes.Repeat([]byte("x"), pad)...)
	return append(b, tail...)
}

func assetBody() []byte {
	var b bytes.Buffer
	b.WriteString("/* rampart bench asset */\n")
	for i := 0; b.Len() < AssetSize; i++ {
		fmt.Fprintf(&b, "function f%d(a,b){return (a*%d+b)%%97;}\n", i, i)
	}
	return b.Bytes()[:AssetSize]
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	flag.Parse()

	small := smallBody()
	asset := assetBody()
	modTime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	const etag = `"bench-asset-v1"`
	var c counters

	mux := http.NewServeMux()
	mux.HandleFunc("/api/small", func(w http.ResponseWriter, r *http.Request) {
		c.small.Add(1)
		if r.Method == http.MethodPost {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{"200"}
		_, _ = w.Write(small)
	})
	mux.HandleFunc("/static/asset.js", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/javascript")
		h.Set("ETag", etag)
		h.Set("Cache-Control", "public, max-age=300")
		if r.Header.Get("If-None-Match") == etag {
			c.assetNotModified.Add(1)
		} else {
			c.asset.Add(1)
		}
		http.ServeContent(w, r, "asset.js", modTime, bytes.NewReader(asset))
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		c.ws.Add(1)
		c.wsOpen.Add(1)
		defer c.wsOpen.Add(-1)
		conn.SetReadLimit(64 << 10)
		ctx := context.Background()
		for {
			typ, msg, err := conn.Read(ctx)
			if err != nil {
				conn.CloseNow()
				return
			}
			if err := conn.Write(ctx, typ, msg); err != nil {
				conn.CloseNow()
				return
			}
		}
	})
	mux.HandleFunc("/__stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{
			"small":              c.small.Load(),
			"asset":              c.asset.Load(),
			"asset_not_modified": c.assetNotModified.Load(),
			"ws_total":           c.ws.Load(),
			"ws_open":            c.wsOpen.Load(),
		})
	})

	if host, _, err := net.SplitHostPort(*listen); err != nil || !isLoopback(host) {
		fmt.Fprintf(os.Stderr, "upstream: %q is not a loopback address\n", *listen)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		os.Exit(1)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
