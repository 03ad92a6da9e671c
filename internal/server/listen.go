package server

import (
	"context"
	"net"
	"syscall"
	"time"
)

// Client connections are probed with TCP keepalive (an unplugged client's
// idle connection is found even between timeouts), with Go's usual timing.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

// listenTCP opens a client listener. The keepalive options are set once on
// the listening socket, from which Linux copies them to every accepted
// connection, instead of by four setsockopt calls per connection (what
// net.Listen does): on a handshake-heavy load that is a quarter of the
// system calls an accept costs.
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1, // inherited from the listening socket
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = setKeepAlive(int(fd))
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

func setKeepAlive(fd int) error {
	opts := []struct{ level, name, value int }{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
	}
	for _, o := range opts {
		if err := syscall.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return err
		}
	}
	return nil
}
