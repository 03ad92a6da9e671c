package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	lat := make([]int64, 1000)
	for i := range lat {
		lat[i] = int64(i+1) * int64(time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want float64
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}} {
		if got := pct(lat, c.p); got != c.want {
			t.Errorf("p%v = %v ms, want %v", c.p*100, got, c.want)
		}
	}
	if pct(nil, 0.5) != 0 {
		t.Error("percentile of no samples")
	}
}

func TestMergeCountsEveryWorker(t *testing.T) {
	a := &worker{status: map[int]int{}}
	b := &worker{status: map[int]int{}}
	a.record(200, 10, 2*time.Millisecond)
	a.record(503, 10, 4*time.Millisecond)
	b.record(200, 10, 1*time.Millisecond)
	b.fail(errTest("reset"))
	r := merge("keepalive", []*worker{a, b}, 2*time.Second)
	if r.Requests != 3 || r.Non2xx != 1 || r.Errors != 1 || r.RPS != 1.5 || r.Status["200"] != 2 {
		t.Errorf("merged %+v", r)
	}
	if r.P50 != 2 || r.Max != 4 || r.FirstError != "reset" {
		t.Errorf("merged latencies %+v", r)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestRequestBytes(t *testing.T) {
	o := options{method: "POST", path: "/api/small?q=1", host: "bench.test", body: `{"a":1}`, contentType: "application/json"}
	req := string(requestBytes(o, true))
	for _, want := range []string{"POST /api/small?q=1 HTTP/1.1\r\n", "Host: bench.test\r\n", "Content-Length: 7\r\n", "Connection: close\r\n", "\r\n\r\n{\"a\":1}"} {
		if !strings.Contains(req, want) {
			t.Errorf("request lacks %q:\n%s", want, req)
		}
	}
}

func TestOnlyLoopbackTargets(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:8443": true, "[::1]:8443": true, "localhost:1": true, "10.0.0.1:443": false, "example.com:443": false, "nope": false} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
