package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A pipe whose reader ends with context.Canceled when cancel runs, as
// http.Transport's body does when the request's context is cancelled.
func pipeBody() (io.ReadCloser, *io.PipeWriter, context.CancelFunc) {
	pr, pw := io.Pipe()
	return pr, pw, func() { pw.CloseWithError(context.Canceled) }
}

func TestPauseBoundBody_StallEndsWithATimeout(t *testing.T) {
	rc, pw, cancel := pipeBody()
	b := newPauseBoundBody(rc, 200*time.Millisecond, cancel)
	defer b.Close()
	go func() { _, _ = pw.Write([]byte("part")) }()
	buf := make([]byte, 16)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "part" {
		t.Fatalf("first read: %q %v", buf[:n], err)
	}
	start := time.Now()
	_, err := b.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled read ended with %v, want a timeout", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
		t.Errorf("stalled read ended after %v, want about 200ms", d)
	}
}

// Time spent outside Read (the proxy writing to a slow client) is not a
// pause of the upstream; steady reads never trip the timer.
func TestPauseBoundBody_OnlyAWaitingReadCounts(t *testing.T) {
	rc, pw, cancel := pipeBody()
	b := newPauseBoundBody(rc, 200*time.Millisecond, cancel)
	defer b.Close()
	go func() {
		for i := 0; i < 8; i++ {
			_, _ = pw.Write([]byte("x"))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	buf := make([]byte, 16)
	got := 0
	for {
		n, err := b.Read(buf)
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		if got == 2 {
			time.Sleep(500 * time.Millisecond) // not reading: no timeout
		}
	}
	if got != 8 {
		t.Errorf("read %d bytes, want 8", got)
	}
}
