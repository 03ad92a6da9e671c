package protoguard

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	last time.Time
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error { d.last = t; return nil }

// Once closing has begun, no write deadline may reach past the close
// deadline: not TLS's own 5 s for close_notify, not "none".
func TestPrefixConn_WriteDeadlinesAreCappedWhileClosing(t *testing.T) {
	raw := &deadlineConn{}
	p := &prefixConn{Conn: raw}
	later := time.Now().Add(5 * time.Second)
	_ = p.SetWriteDeadline(later)
	if !raw.last.Equal(later) {
		t.Fatalf("before closing: deadline %v, want %v", raw.last, later)
	}
	by := time.Now().Add(time.Second)
	p.capDeadline(by)
	for _, d := range []time.Time{later, {}} {
		_ = p.SetWriteDeadline(d)
		if !raw.last.Equal(time.Unix(0, by.UnixNano())) {
			t.Errorf("SetWriteDeadline(%v) while closing set %v, want %v", d, raw.last, by)
		}
	}
	sooner := time.Now().Add(100 * time.Millisecond)
	if _ = p.SetWriteDeadline(sooner); !raw.last.Equal(sooner) {
		t.Errorf("a sooner deadline became %v", raw.last)
	}
}
