package clientip

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyServer listens on 127.0.0.1 with the PROXY protocol, trusting the
// given ranges, and reports what each accepted connection said.
type accepted struct {
	remote  string
	payload string
}

func proxyServer(t *testing.T, trusted ...string) (addr string, got <-chan accepted) {
	t.Helper()
	r := mustNew(t, Config{TrustedProxies: trusted, ClientIP: Source{ProxyProtocol: true}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := r.Listener(ln)
	t.Cleanup(func() { _ = pl.Close() })
	ch := make(chan accepted, 8)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 5)
				_, _ = io.ReadFull(c, buf)
				_, _ = c.Write([]byte("ok"))
				ch <- accepted{remote: c.RemoteAddr().String(), payload: string(buf)}
			}()
		}
	}()
	return pl.Addr().String(), ch
}

// dialFrom connects to addr from the loopback address local.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func header(version byte, src, dst string) *proxyproto.Header {
	s, _ := net.ResolveTCPAddr("tcp", src)
	d, _ := net.ResolveTCPAddr("tcp", dst)
	return proxyproto.HeaderProxyFromAddrs(version, s, d)
}

// expectClosed asserts the server closes c without answering.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open: want it closed by the server")
	}
	if err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	}
}

func TestProxyProtocolFromTrustedPeer(t *testing.T) {
	tests := []struct {
		name       string
		header     *proxyproto.Header
		wantRemote string
	}{
		{"v1 IPv4 names the client", header(1, "198.51.100.1:4711", "192.0.2.1:443"), "198.51.100.1:4711"},
		{"v2 IPv4 names the client", header(2, "198.51.100.2:4712", "192.0.2.1:443"), "198.51.100.2:4712"},
		{"v1 IPv6 names the client", header(1, "[2001:db8::1]:4713", "[2001:db8::2]:443"), "[2001:db8::1]:4713"},
		{"v2 IPv6 names the client", header(2, "[2001:db8::3]:4714", "[2001:db8::2]:443"), "[2001:db8::3]:4714"},
		{"v2 LOCAL health check keeps the peer", &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}, "127.0.0.1:"},
	}
	addr, got := proxyServer(t, "127.0.0.1/32")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, "127.0.0.1", addr)
			if _, err := tt.header.WriteTo(c); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			select {
			case a := <-got:
				if a.payload != "hello" {
					t.Fatalf("payload = %q, want hello", a.payload)
				}
				if len(a.remote) < len(tt.wantRemote) || a.remote[:len(tt.wantRemote)] != tt.wantRemote {
					t.Fatalf("RemoteAddr = %s, want %s", a.remote, tt.wantRemote)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("connection was not accepted")
			}
		})
	}
}

func TestProxyProtocolRefusals(t *testing.T) {
	old := headerTimeout
	headerTimeout = 300 * time.Millisecond
	t.Cleanup(func() { headerTimeout = old })

	tests := []struct {
		name    string
		trusted string
		send    func(c net.Conn)
	}{
		{"untrusted peer with a header is closed", "127.0.0.2/32", func(c net.Conn) {
			_, _ = header(2, "198.51.100.1:1", "192.0.2.1:443").WriteTo(c)
		}},
		{"untrusted peer without a header is closed", "127.0.0.2/32", func(c net.Conn) {
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		}},
		{"untrusted silent peer is closed", "127.0.0.2/32", func(net.Conn) {}},
		{"trusted peer without a header is closed", "127.0.0.1/32", func(c net.Conn) {
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		}},
		{"trusted silent peer is closed after the header timeout", "127.0.0.1/32", func(net.Conn) {}},
		{"trusted peer with a UDP header is closed", "127.0.0.1/32", func(c net.Conn) {
			s, _ := net.ResolveUDPAddr("udp", "198.51.100.1:1")
			d, _ := net.ResolveUDPAddr("udp", "192.0.2.1:443")
			_, _ = proxyproto.HeaderProxyFromAddrs(2, s, d).WriteTo(c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := proxyServer(t, tt.trusted)
			c := dialFrom(t, "127.0.0.1", addr)
			tt.send(c)
			expectClosed(t, c)
			select {
			case a := <-got:
				t.Fatalf("refused connection reached Accept: %+v", a)
			default:
			}
		})
	}
}

func TestProxyProtocolListenerKeepsAcceptingAfterRefusals(t *testing.T) {
	addr, got := proxyServer(t, "127.0.0.2/32")
	for range 3 {
		expectClosed(t, dialFrom(t, "127.0.0.1", addr))
	}
	c := dialFrom(t, "127.0.0.2", addr)
	if _, err := header(1, "198.51.100.9:9", "192.0.2.1:443").WriteTo(c); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello"))
	select {
	case a := <-got:
		if a.remote != "198.51.100.9:9" {
			t.Fatalf("RemoteAddr = %s, want 198.51.100.9:9", a.remote)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("trusted connection was not accepted after refusals")
	}
}

func TestProxyProtocolSlowPeerDoesNotBlockOthers(t *testing.T) {
	addr, got := proxyServer(t, "127.0.0.1/32")
	slow := dialFrom(t, "127.0.0.1", addr) // sends nothing yet
	fast := dialFrom(t, "127.0.0.1", addr)
	_, _ = header(2, "198.51.100.3:3", "192.0.2.1:443").WriteTo(fast)
	_, _ = fast.Write([]byte("hello"))
	select {
	case a := <-got:
		if a.remote != "198.51.100.3:3" {
			t.Fatalf("RemoteAddr = %s, want the fast client", a.remote)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a silent connection held up Accept")
	}
	_ = slow.Close()
}

func TestListenerWithoutProxyProtocolIsUnchanged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := mustNew(t, Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Forwarded-For"}})
	if r.Listener(ln) != ln {
		t.Fatal("Listener wrapped ln although proxy_protocol is off")
	}
}

func TestProxyListenerCloseUnblocksAccept(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: []string{"127.0.0.1"}, ClientIP: Source{ProxyProtocol: true}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := r.Listener(ln)
	pending := dialFrom(t, "127.0.0.1", pl.Addr().String()) // header never sent
	errc := make(chan error, 1)
	go func() {
		_, err := pl.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	expectClosed(t, pending)
}

// A listener following the resolver in effect: once a reload has taken a
// proxy out of trusted_proxies, its next connection is refused even with a
// valid PROXY header (before, the listener kept the list it started with).
func TestProxyListenerFollowsTheTrustedProxiesInEffect(t *testing.T) {
	var current atomic.Pointer[Resolver]
	current.Store(mustNew(t, Config{TrustedProxies: []string{"127.0.0.1/32"}, ClientIP: Source{ProxyProtocol: true}}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := ListenerFollowing(ln, current.Load)
	t.Cleanup(func() { _ = pl.Close() })
	got := make(chan string, 4)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			got <- c.RemoteAddr().String()
			_ = c.Close()
		}
	}()
	send := func() net.Conn {
		c := dialFrom(t, "127.0.0.1", pl.Addr().String())
		if _, err := header(1, "198.51.100.7:4711", "192.0.2.1:443").WriteTo(c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	send()
	select {
	case a := <-got:
		if a != "198.51.100.7:4711" {
			t.Fatalf("RemoteAddr = %s, want the client the header names", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the trusted proxy's connection was not accepted")
	}
	current.Store(mustNew(t, Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{ProxyProtocol: true}}))
	expectClosed(t, send())
	select {
	case a := <-got:
		t.Fatalf("a connection from a proxy no longer trusted was accepted as %s", a)
	case <-time.After(200 * time.Millisecond):
	}
}
