package protoguard

import (
	"testing"
	"time"
)

// bodyWait never cuts a body that keeps up with the rate, however large
// the figures: bytes/rate beyond what a Duration holds, or a huge
// body_read_timeout, must not wrap into a negative (1ns) deadline.
func TestBodyWait_LargeFiguresDoNotWrap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		brt    time.Duration
		rate   int64
		bytes  int64
		waited time.Duration
	}{
		{"10 GiB at 1 B/s, fast client", 10 * time.Second, 1, 10 << 30, 2 * time.Second},
		{"read timeout plus paid time wraps", 10 * time.Second, 1, 9223372030, 2 * time.Second},
		{"1 TiB at 100 B/s", 10 * time.Second, 100, 1 << 40, 2 * time.Second},
		{"huge body_read_timeout", time.Duration(1<<63 - 1), 1024, 1 << 20, 2 * time.Second},
	} {
		c := &Conn{lim: &Limits{BodyReadTimeout: tc.brt, BodyMinRate: tc.rate}}
		c.bodyBytes, c.bodyWaited = tc.bytes, tc.waited
		if wait, slow := c.bodyWait(); wait != tc.brt || slow {
			t.Errorf("%s: bodyWait = %v, tooSlow %v; want %v, false", tc.name, wait, slow, tc.brt)
		}
	}
	// And a slow body is still cut: 100 bytes after 20 s of waiting at
	// 1 KiB/s with 10 s free is 9.9 s behind.
	c := &Conn{lim: &Limits{BodyReadTimeout: 10 * time.Second, BodyMinRate: 1000}}
	c.bodyBytes, c.bodyWaited = 100, 20*time.Second
	if wait, slow := c.bodyWait(); wait != time.Nanosecond || !slow {
		t.Errorf("slow body: bodyWait = %v, tooSlow %v; want 1ns, true", wait, slow)
	}
	c.bodyBytes, c.bodyWaited = 5000, 12*time.Second // 3 s ahead
	if wait, slow := c.bodyWait(); wait != 3*time.Second || !slow {
		t.Errorf("body ahead by 3 s: bodyWait = %v, tooSlow %v; want 3s, true", wait, slow)
	}
}

// Body bytes that arrive in the same read as the head count for the body.
func TestBodyBytesThatCameWithTheHeadCount(t *testing.T) {
	lim := &Limits{MaxHeaderBytes: 8 << 10, MaxURILength: 4 << 10, BodyReadTimeout: time.Second, BodyMinRate: 1000}
	c := &Conn{lim: lim}
	c.rejectAt.Store(-1)
	c.buf = make([]byte, 16<<10)
	msg := "POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5000\r\n\r\n" + string(make([]byte, 3000))
	c.w = copy(c.buf, msg)
	c.st = sHead
	if !c.step() || c.st != sBody {
		t.Fatalf("head not released (state %v)", c.st)
	}
	if c.bodyBytes != 3000 {
		t.Errorf("bodyBytes = %d, want the 3000 body bytes that came with the head", c.bodyBytes)
	}
}
