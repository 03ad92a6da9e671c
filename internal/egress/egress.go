// Package egress is rampart's only way out: a dialer that connects to the
// addresses of configured upstream targets (and the shared-state store) and
// to nothing else. The check runs on the resolved address at connect time,
// so neither a rewritten URL nor a DNS answer changed after load can point
// the proxy at another host (no open proxy, no SSRF, no DNS rebinding).
package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// ErrNotAllowed is returned for a destination outside the allowlist.
var ErrNotAllowed = errors.New("egress: destination is not a configured upstream")

// Dialer connects only to allowed addresses.
type Dialer struct {
	allowed map[netip.AddrPort]struct{}
	dialer  net.Dialer
}

// New resolves every "host:port" once, at load, and allows exactly the
// resulting addresses. Connect timeouts come from the caller's context.
func New(ctx context.Context, hostports []string) (*Dialer, error) {
	d := &Dialer{allowed: map[netip.AddrPort]struct{}{}}
	for _, hp := range hostports {
		host, portStr, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("egress: %q: %w", hp, err)
		}
		port, err := net.LookupPort("tcp", portStr)
		if err != nil {
			return nil, fmt.Errorf("egress: %q: %w", hp, err)
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("egress: cannot resolve upstream %q: %w (pin the name in /etc/hosts or use an address)", host, err)
		}
		for _, ip := range ips {
			d.allowed[netip.AddrPortFrom(ip.Unmap(), uint16(port))] = struct{}{}
		}
	}
	d.dialer = net.Dialer{
		KeepAlive:      30 * time.Second,
		ControlContext: d.control,
	}
	return d, nil
}

// Allows reports whether addr ("ip:port") may be dialled.
func (d *Dialer) Allows(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	_, ok := d.allowed[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	return ok
}

func (d *Dialer) control(_ context.Context, _ string, address string, _ syscall.RawConn) error {
	if d.Allows(address) {
		return nil
	}
	observe.Default().Event(slog.LevelWarn, "security",
		slog.String("stage", "egress"), slog.String("reason", "destination-not-allowed"), slog.String("destination", address))
	observe.Metrics.Refusals.WithLabelValues("egress", "destination-not-allowed").Inc()
	return fmt.Errorf("%w: %s", ErrNotAllowed, address)
}

// DialContext is the net.Dialer method the HTTP transport and the state
// store use.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.dialer.DialContext(ctx, network, addr)
}
