// Package accept holds what the listener wrappers of the pipeline's
// connection stages (the connection guard, the PROXY protocol reader) share:
// reading the peer's address cheaply, and retrying Accept after a
// temporary error the way net/http does.
package accept

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// PeerAddr returns the IP address of a, unmapped, without allocating for
// the common TCP case; the zero Addr when there is none.
func PeerAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Temporary reports whether an Accept error is worth retrying (too many
// open files and the like), also when it is wrapped.
func Temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Backoff doubles the delay before the next Accept from 5 ms up to 1 s, as
// net/http does after a temporary Accept error.
func Backoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}
