package proxy

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// upstream.read_timeout on the http.Transport path (bodies, upgrades'
// refusals, HTTPS targets): http.Transport has no bound on a pause in a
// response body, so the body is read under a timer that cancels the
// request's context when one read has waited read_timeout. (The direct
// path moves the connection's read deadline instead.)

// errReadTimeout is what a body read returns when the upstream paused
// longer than read_timeout.
var errReadTimeout error = readTimeoutError{}

type readTimeoutError struct{}

func (readTimeoutError) Error() string {
	return "upstream paused longer than read_timeout in a response body"
}
func (readTimeoutError) Timeout() bool   { return true }
func (readTimeoutError) Temporary() bool { return false }

// pauseBoundBody bounds each read of rc to timeout.
type pauseBoundBody struct {
	rc      io.ReadCloser
	timeout time.Duration
	cancel  context.CancelFunc

	mu      sync.Mutex
	reading bool      // a Read is waiting on the upstream
	since   time.Time // when it started
	fired   bool
	closed  bool
	timer   *time.Timer
}

func newPauseBoundBody(rc io.ReadCloser, timeout time.Duration, cancel context.CancelFunc) *pauseBoundBody {
	b := &pauseBoundBody{rc: rc, timeout: timeout, cancel: cancel}
	b.timer = time.AfterFunc(timeout, b.check)
	return b
}

// check runs when the timer fires: a read waiting for timeout ends the
// exchange; otherwise the timer is set for the current read's end.
func (b *pauseBoundBody) check() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.fired {
		return
	}
	if !b.reading {
		b.timer.Reset(b.timeout)
		return
	}
	if waited := time.Since(b.since); waited < b.timeout {
		b.timer.Reset(b.timeout - waited)
		return
	}
	b.fired = true
	b.cancel()
}

func (b *pauseBoundBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.reading, b.since = true, time.Now()
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	b.mu.Lock()
	b.reading = false
	fired := b.fired
	b.mu.Unlock()
	if err != nil && fired && !errors.Is(err, io.EOF) {
		err = errReadTimeout
	}
	return n, err
}

func (b *pauseBoundBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.timer.Stop()
	b.mu.Unlock()
	err := b.rc.Close()
	b.cancel()
	return err
}
