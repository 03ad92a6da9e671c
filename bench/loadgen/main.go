// Command loadgen is the load generator of the benchmark. It speaks
// HTTP/1.1 over TLS to one loopback address, with SNI and Host both set to
// -host, and reports throughput and latency percentiles as one JSON line.
//
// Modes:
//
//	keepalive  -c connections, each sending requests back to back for -d
//	newconn    -c workers, each request on a new TLS connection (full
//	           handshake, no session resumption), Connection: close
//	rate       open loop at -rate req/s over -c keepalive connections;
//	           latency runs from the scheduled send time, so a stalled
//	           server is charged for every request it delayed
//	ws         -n WebSockets opened (-c at a time), one echo each, held
//	           idle for -d, then closed
//
// Progress lines on stdout ("phase measure", "phase done", "phase open N",
// "phase closed") let a harness sample the server between phases; the last
// line is the JSON result. Every run stops by itself after -warmup + -d.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-proxy/rampart/bench/internal/loadresult"
)

type options struct {
	addr, host, ca     string
	mode               string
	conns              int
	dur, warmup        time.Duration
	rate               int
	method, path, body string
	contentType        string
	wsCount            int
	timeout            time.Duration
	groups             string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "", "target host:port (loopback only)")
	flag.StringVar(&o.host, "host", "bench.test", "SNI and Host header")
	flag.StringVar(&o.ca, "ca", "", "PEM file of the CA that signed the target's certificate")
	flag.StringVar(&o.mode, "mode", "keepalive", "keepalive | newconn | rate | ws")
	flag.IntVar(&o.conns, "c", 64, "connections (keepalive, rate), workers (newconn), dial concurrency (ws)")
	flag.DurationVar(&o.dur, "d", 5*time.Second, "measured duration (ws: how long the sockets are held)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "load before the measured window, not recorded")
	flag.IntVar(&o.rate, "rate", 2000, "requests per second (rate mode)")
	flag.StringVar(&o.method, "method", "GET", "request method")
	flag.StringVar(&o.path, "path", "/api/small", "request target (path and query)")
	flag.StringVar(&o.body, "body", "", "request body")
	flag.StringVar(&o.contentType, "content-type", "application/json", "Content-Type of a request with a body")
	flag.IntVar(&o.wsCount, "n", 5000, "WebSockets to open (ws mode)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.StringVar(&o.groups, "groups", "default", "key exchange groups offered: default (Go's, X25519MLKEM768 first) | x25519")
	flag.Parse()

	if err := checkLoopback(o.addr); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	raiseNofile()
	tc, err := tlsConfig(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	var res loadresult.Result
	switch o.mode {
	case "keepalive", "newconn", "rate":
		res = runHTTP(o, tc)
	case "ws":
		res = runWS(o, tc)
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown mode %q\n", o.mode)
		os.Exit(2)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", addr, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("-addr %q: only loopback targets are allowed", addr)
}

func raiseNofile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

func tlsConfig(o options) (*tls.Config, error) {
	tc := &tls.Config{
		ServerName: o.host,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
	}
	switch o.groups {
	case "default":
	case "x25519":
		tc.CurvePreferences = []tls.CurveID{tls.X25519}
	default:
		return nil, fmt.Errorf("-groups %q: want default or x25519", o.groups)
	}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", o.ca)
		}
		tc.RootCAs = pool
	} else {
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

func requestBytes(o options, closeConn bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: rampart-bench/1.0\r\nAccept: */*\r\nAccept-Encoding: identity\r\n", o.method, o.path, o.host)
	if o.body != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", o.contentType, len(o.body))
	}
	if closeConn {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(o.body)
	return b.Bytes()
}

// worker state, one per connection or worker goroutine.
type worker struct {
	lat      []int64 // nanoseconds
	requests int64
	errors   int64
	non2xx   int64
	bytes    int64
	late     int64
	status   map[int]int
	firstErr error
	tlsDesc  string
}

func (w *worker) fail(err error) {
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

type conn struct {
	c  *tls.Conn
	br *bufio.Reader
}

func dial(o options, tc *tls.Config) (*conn, string, error) {
	d := net.Dialer{Timeout: o.timeout}
	raw, err := d.Dial("tcp", o.addr)
	if err != nil {
		return nil, "", err
	}
	c := tls.Client(raw, tc)
	_ = c.SetDeadline(time.Now().Add(o.timeout))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, "", err
	}
	st := c.ConnectionState()
	desc := tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	if st.CurveID != 0 {
		desc += " " + st.CurveID.String()
	}
	return &conn{c: c, br: bufio.NewReaderSize(c, 32<<10)}, desc, nil
}

// do sends one request and reads the whole response.
func (cn *conn) do(req []byte, deadline time.Time) (status int, n int64, keep bool, err error) {
	_ = cn.c.SetDeadline(deadline)
	if _, err = cn.c.Write(req); err != nil {
		return 0, 0, false, err
	}
	resp, err := http.ReadResponse(cn.br, nil)
	if err != nil {
		return 0, 0, false, err
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, n, false, err
	}
	return resp.StatusCode, n, !resp.Close, nil
}

func runHTTP(o options, tc *tls.Config) loadresult.Result {
	start := time.Now()
	measureAt := start.Add(o.warmup)
	end := measureAt.Add(o.dur)
	var measuring atomic.Bool
	workers := make([]*worker, o.conns)
	var wg sync.WaitGroup

	var slot atomic.Int64
	interval := time.Duration(0)
	if o.mode == "rate" {
		if o.rate <= 0 {
			o.rate = 1
		}
		interval = time.Second / time.Duration(o.rate)
	}
	perWorker := 1 << 14
	if o.mode == "rate" {
		perWorker = int(float64(o.rate)*o.dur.Seconds()/float64(o.conns)*1.5) + 64
	}

	for i := range workers {
		w := &worker{lat: make([]int64, 0, perWorker), status: map[int]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch o.mode {
			case "keepalive":
				keepaliveLoop(o, tc, w, end, &measuring)
			case "newconn":
				newconnLoop(o, tc, w, end, &measuring)
			case "rate":
				rateLoop(o, tc, w, start, measureAt, end, interval, &slot)
			}
		}()
	}
	time.Sleep(time.Until(measureAt))
	measuring.Store(true)
	fmt.Println("phase measure")
	time.Sleep(time.Until(end))
	measuring.Store(false)
	fmt.Println("phase done")
	wg.Wait()
	return merge(o.mode, workers, o.dur)
}

func keepaliveLoop(o options, tc *tls.Config, w *worker, end time.Time, measuring *atomic.Bool) {
	req := requestBytes(o, false)
	var cn *conn
	for time.Now().Before(end) {
		if cn == nil {
			var err error
			var desc string
			cn, desc, err = dial(o, tc)
			if err != nil {
				if measuring.Load() {
					w.fail(err)
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			w.tlsDesc = desc
		}
		t0 := time.Now()
		dl := t0.Add(o.timeout)
		if dl.After(end) {
			dl = end
		}
		rec := measuring.Load()
		status, n, keep, err := cn.do(req, dl)
		done := time.Now()
		if err != nil {
			cn.c.Close()
			cn = nil
			if rec && done.Before(end) {
				w.fail(err)
			}
			continue
		}
		if rec && !done.After(end) {
			w.record(status, n, done.Sub(t0))
		}
		if !keep {
			cn.c.Close()
			cn = nil
		}
	}
	if cn != nil {
		cn.c.Close()
	}
}

func newconnLoop(o options, tc *tls.Config, w *worker, end time.Time, measuring *atomic.Bool) {
	req := requestBytes(o, true)
	for time.Now().Before(end) {
		t0 := time.Now()
		rec := measuring.Load()
		cn, desc, err := dial(o, tc)
		if err != nil {
			if rec && time.Now().Before(end) {
				w.fail(err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		w.tlsDesc = desc
		dl := t0.Add(o.timeout)
		if dl.After(end) {
			dl = end
		}
		status, n, _, err := cn.do(req, dl)
		cn.c.Close()
		done := time.Now()
		if err != nil {
			if rec && done.Before(end) {
				w.fail(err)
			}
			continue
		}
		if rec && !done.After(end) {
			w.record(status, n, done.Sub(t0))
		}
	}
}

// rateLoop takes the next slot of a shared schedule (slot i is due at
// start + i*interval), waits for it, sends, and measures from the slot's
// due time. When every connection is busy the due times pass unserved and
// the delay shows up in the latency, as a user would see it.
func rateLoop(o options, tc *tls.Config, w *worker, start, measureAt, end time.Time, interval time.Duration, slot *atomic.Int64) {
	req := requestBytes(o, false)
	var cn *conn
	hardEnd := end.Add(o.timeout)
	for {
		i := slot.Add(1) - 1
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		rec := !due.Before(measureAt)
		if rec && time.Since(due) > time.Millisecond {
			w.late++
		}
		var err error
		if cn == nil {
			var desc string
			cn, desc, err = dial(o, tc)
			if err != nil {
				if rec {
					w.fail(err)
				}
				continue
			}
			w.tlsDesc = desc
		}
		status, n, keep, err := cn.do(req, hardEnd)
		done := time.Now()
		if err != nil {
			cn.c.Close()
			cn = nil
			if rec {
				w.fail(err)
			}
			continue
		}
		if rec {
			w.record(status, n, done.Sub(due))
		}
		if !keep {
			cn.c.Close()
			cn = nil
		}
	}
	if cn != nil {
		cn.c.Close()
	}
}

func (w *worker) record(status int, n int64, d time.Duration) {
	w.requests++
	w.bytes += n
	w.status[status]++
	if status < 200 || status > 299 {
		w.non2xx++
	}
	w.lat = append(w.lat, int64(d))
}

func merge(mode string, ws []*worker, dur time.Duration) loadresult.Result {
	r := loadresult.Result{Mode: mode, Status: map[string]int{}, Seconds: dur.Seconds()}
	total := 0
	for _, w := range ws {
		total += len(w.lat)
	}
	all := make([]int64, 0, total)
	for _, w := range ws {
		all = append(all, w.lat...)
		r.Requests += w.requests
		r.Errors += w.errors
		r.Non2xx += w.non2xx
		r.Bytes += w.bytes
		r.Late += w.late
		for s, n := range w.status {
			r.Status[strconv.Itoa(s)] += n
		}
		if r.FirstError == "" && w.firstErr != nil {
			r.FirstError = w.firstErr.Error()
		}
		if r.TLS == "" {
			r.TLS = w.tlsDesc
		}
	}
	slices.Sort(all)
	r.RPS = float64(r.Requests) / dur.Seconds()
	r.P50 = pct(all, 0.50)
	r.P90 = pct(all, 0.90)
	r.P99 = pct(all, 0.99)
	r.P999 = pct(all, 0.999)
	if len(all) > 0 {
		r.Max = ms(all[len(all)-1])
	}
	return r
}

func pct(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return ms(sorted[i])
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// runWS opens o.wsCount WebSockets, checks one echo on each, holds them for
// o.dur and closes them.
func runWS(o options, tc *tls.Config) loadresult.Result {
	r := loadresult.Result{Mode: "ws", Status: map[string]int{}}
	tr := &http.Transport{
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, o.addr)
		},
		ForceAttemptHTTP2:   false,
		TLSHandshakeTimeout: o.timeout,
		DisableKeepAlives:   true,
	}
	client := &http.Client{Transport: tr, Timeout: 0}
	url := "wss://" + o.host + o.path
	if !strings.HasPrefix(o.path, "/") {
		url = "wss://" + o.host + "/" + o.path
	}
	conns := make([]*websocket.Conn, o.wsCount)
	var mu sync.Mutex
	var firstErr error
	var failed, echoed atomic.Int64
	sem := make(chan struct{}, max(1, o.conns))
	var wg sync.WaitGroup
	t0 := time.Now()
	var lat []int64
	for i := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			defer cancel()
			start := time.Now()
			c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
			if err == nil {
				msg := []byte("hello " + strconv.Itoa(i))
				if err = c.Write(ctx, websocket.MessageText, msg); err == nil {
					var got []byte
					if _, got, err = c.Read(ctx); err == nil && !bytes.Equal(got, msg) {
						err = errors.New("echo mismatch")
					}
				}
				if err != nil {
					c.CloseNow()
				}
			}
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if resp != nil {
				r.Status[strconv.Itoa(resp.StatusCode)]++
			}
			if err != nil {
				failed.Add(1)
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			echoed.Add(1)
			conns[i] = c
			lat = append(lat, int64(d))
		}()
	}
	wg.Wait()
	openFor := time.Since(t0)
	opened := 0
	for _, c := range conns {
		if c != nil {
			opened++
		}
	}
	fmt.Printf("phase open %d\n", opened)
	// Hold idle. A reader per socket would add a goroutine per socket to
	// this process only; the server side is what is measured.
	time.Sleep(o.dur)
	fmt.Println("phase closing")
	var cwg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		cwg.Add(1)
		go func() {
			defer func() { <-sem; cwg.Done() }()
			// A clean close handshake where the peer answers in time.
			done := make(chan struct{})
			go func() { _ = c.Close(websocket.StatusNormalClosure, ""); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				c.CloseNow()
			}
		}()
	}
	cwg.Wait()
	fmt.Println("phase closed")
	slices.Sort(lat)
	r.WSOpened = opened
	r.WSFailed = int(failed.Load())
	r.WSEchoed = int(echoed.Load())
	r.Requests = int64(opened)
	r.Errors = failed.Load()
	r.Seconds = openFor.Seconds()
	if openFor > 0 {
		r.RPS = float64(opened) / openFor.Seconds()
	}
	r.P50 = pct(lat, 0.5)
	r.P90 = pct(lat, 0.9)
	r.P99 = pct(lat, 0.99)
	r.P999 = pct(lat, 0.999)
	if len(lat) > 0 {
		r.Max = ms(lat[len(lat)-1])
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	return r
}
