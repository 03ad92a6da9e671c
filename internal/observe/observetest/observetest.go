// Package observetest captures rampart's security log in tests.
package observetest

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Buffer is a log destination safe for the writers of several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what has been logged so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Security sends the security log to a Buffer until the test ends (the
// access log is discarded).
func Security(t testing.TB) *Buffer {
	t.Helper()
	prev := observe.Default()
	buf := &Buffer{}
	observe.SetDefault(observe.New(io.Discard, buf))
	t.Cleanup(func() { observe.SetDefault(prev) })
	return buf
}
