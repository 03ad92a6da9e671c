package connguard

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-proxy/rampart/internal/observe/observetest"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/units"
)

// server accepts through the guard and holds every connection until the
// test closes it, reading until EOF on its own goroutine.
type server struct {
	t     *testing.T
	g     *Guard
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	got   chan net.Conn
}

func startServer(t *testing.T, g *Guard) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := g.Listener(ln)
	s := &server{t: t, g: g, addr: ln.Addr().String(), got: make(chan net.Conn, 1024)}
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go func() {
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
			s.got <- c
		}
	}()
	t.Cleanup(func() {
		_ = gl.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

// dial connects from the loopback address local.
func (s *server) dial(local string) net.Conn {
	s.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("dial from %s: %v", local, err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// admitted dials from local and waits until the server accepted it.
func (s *server) admitted(local string) (client, server net.Conn) {
	s.t.Helper()
	c := s.dial(local)
	select {
	case sc := <-s.got:
		return c, sc
	case <-time.After(3 * time.Second):
		s.t.Fatalf("connection from %s was not admitted", local)
	}
	return nil, nil
}

// refused dials from local and asserts the server closes it at once:
// the first read returns EOF and Accept never returned it.
func (s *server) refused(local string) {
	s.t.Helper()
	c := s.dial(local)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		s.t.Fatalf("connection from %s: read = %d, %v; want EOF (closed at once)", local, n, err)
	}
	select {
	case <-s.got:
		s.t.Fatalf("refused connection from %s reached Accept", local)
	default:
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *Guard) clients() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.open)
}

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	d := Config{}.WithDefaults()
	if d.ConnectionsPerClient != 64 || d.ConnectionsTotal != 20000 || d.MaxClients != 100000 || d.HandshakesPerClient.String() != "20/s" {
		t.Fatalf("defaults = %+v", d)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"empty config is valid", Config{}, ""},
		{"explicit values are valid", Config{ConnectionsPerClient: 10, ConnectionsTotal: 100, HandshakesPerClient: units.Rate{Count: 5, Per: time.Second}, MaxClients: 50}, ""},
		{"negative per-client cap is refused", Config{ConnectionsPerClient: -1}, "connections_per_client: -1 is negative"},
		{"negative total is refused", Config{ConnectionsTotal: -1}, "connections_total: -1 is negative"},
		{"negative table size is refused", Config{MaxClients: -5}, "max_clients: -5 is negative"},
		{"per-client cap above the total is refused", Config{ConnectionsPerClient: 100, ConnectionsTotal: 50}, "is larger than limits.connections_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestPerClientCapClosesTheExtraConnectionAtOnce(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 3, ConnectionsTotal: 100})
	s := startServer(t, g)
	var held []net.Conn
	for range 3 {
		_, sc := s.admitted("127.0.0.1")
		held = append(held, sc)
	}
	s.refused("127.0.0.1")
	s.admitted("127.0.0.2") // another client is not affected
	_ = held[0].Close()     // a slot frees up
	waitFor(t, "slot release", func() bool { return g.Open() == 3 })
	s.admitted("127.0.0.1")
	s.refused("127.0.0.1")
}

func TestTotalCapClosesConnectionsOfEveryClient(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 10, ConnectionsTotal: 3})
	s := startServer(t, g)
	_, first := s.admitted("127.0.0.1")
	s.admitted("127.0.0.2")
	s.admitted("127.0.0.3")
	s.refused("127.0.0.4")
	s.refused("127.0.0.1")
	_ = first.Close()
	waitFor(t, "slot release", func() bool { return g.Open() == 2 })
	s.admitted("127.0.0.4")
}

func TestSlotsAreReleasedWhenConnectionsClose(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 5, ConnectionsTotal: 100})
	gaugeBefore := counterValue(t, openGauge)
	s := startServer(t, g)
	for i := range 200 {
		local := fmt.Sprintf("127.0.0.%d", 1+i%4)
		c, _ := s.admitted(local)
		if i%2 == 0 {
			_ = c.Close() // client closes: the server reads EOF and closes
		} else {
			s.mu.Lock()
			sc := s.conns[len(s.conns)-1]
			s.mu.Unlock()
			_ = sc.Close() // server closes first
			_ = sc.Close() // and again: released once only
			_ = c.Close()
		}
	}
	waitFor(t, "all slots released", func() bool { return g.Open() == 0 })
	if n := g.clients(); n != 0 {
		t.Fatalf("%d per-client entries left after every connection closed", n)
	}
	if v := counterValue(t, openGauge); v != gaugeBefore {
		t.Fatalf("rampart_connections_open = %v after every connection closed, want %v as before", v, gaugeBefore)
	}
}

func TestHijackedConnectionHoldsItsSlotUntilClosed(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 2, ConnectionsTotal: 10})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hijacked := make(chan net.Conn, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		hijacked <- c
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(g.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	hc := <-hijacked
	if g.Open() != 1 {
		t.Fatalf("Open() = %d while the hijacked connection is open, want 1", g.Open())
	}
	_ = hc.Close()
	waitFor(t, "release of the hijacked connection", func() bool { return g.Open() == 0 })
}

func TestHandshakeRatePerClient(t *testing.T) {
	g := New(Config{HandshakesPerClient: units.Rate{Count: 5, Per: time.Second}})
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	g.SetSharedPeer(func(ip netip.Addr) bool { return ip == netip.MustParseAddr("10.0.0.1") })
	allowed := func(ip netip.Addr, n int) int {
		k := 0
		for range n {
			if g.AllowHandshake(ip) {
				k++
			}
		}
		return k
	}
	tests := []struct {
		name    string
		advance time.Duration
		ip      string
		tries   int
		want    int
	}{
		{"burst of count is allowed", 0, "198.51.100.1", 5, 5},
		{"beyond the burst is refused", 0, "198.51.100.1", 3, 0},
		{"one token returns after 1/rate", 200 * time.Millisecond, "198.51.100.1", 3, 1},
		{"another client has its own bucket", 0, "198.51.100.2", 6, 5},
		{"mapped address is the same client", 0, "::ffff:198.51.100.2", 1, 0},
		{"addresses in one IPv6 /64 share a bucket", 0, "2001:db8:1:2::1", 5, 5},
		{"second address of that /64", 0, "2001:db8:1:2::ffff", 2, 0},
		{"another /64 is another client", 0, "2001:db8:1:3::1", 2, 2},
		{"a shared peer is not rationed", 0, "10.0.0.1", 100, 100},
		{"a full second refills the burst", time.Second, "198.51.100.1", 6, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = now.Add(tt.advance)
			if got := allowed(netip.MustParseAddr(tt.ip), tt.tries); got != tt.want {
				t.Fatalf("%d of %d handshakes allowed, want %d", got, tt.tries, tt.want)
			}
		})
	}
}

func TestTablesStayBoundedUnder200kAddresses(t *testing.T) {
	const maxClients = 1000
	g := New(Config{ConnectionsPerClient: 2, ConnectionsTotal: 1 << 30, MaxClients: maxClients})
	live := netip.MustParseAddr("192.0.2.1")
	liveKey, perClient, reason := g.acquire(live)
	if reason != "" || !perClient {
		t.Fatalf("acquire(live) = %q", reason)
	}

	addr := func(i int) netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	type slot struct {
		key       netip.Addr
		perClient bool
	}
	var taken []slot
	refused := 0
	for i := range 200_000 {
		ip := addr(i)
		if !g.AllowHandshake(ip) {
			t.Fatalf("first handshake of %s refused", ip)
		}
		key, pc, reason := g.acquire(ip)
		switch reason {
		case "":
			taken = append(taken, slot{key, pc})
		case ReasonTableFull:
			refused++
		default:
			t.Fatalf("acquire(%s) refused with %q", ip, reason)
		}
		if i%10_000 == 0 {
			if n := g.soft.len(); n > maxClients {
				t.Fatalf("handshake table holds %d entries, cap %d", n, maxClients)
			}
		}
	}
	if n := g.soft.len(); n > maxClients {
		t.Fatalf("handshake table holds %d entries, cap %d", n, maxClients)
	}
	if n := g.clients(); n != maxClients {
		t.Fatalf("connection table holds %d entries, want exactly the cap %d", n, maxClients)
	}
	if len(taken) != maxClients-1 || refused != 200_000-(maxClients-1) {
		t.Fatalf("admitted %d, refused %d as table-full", len(taken), refused)
	}
	// The live client kept its count through all of that.
	if _, _, reason := g.acquire(live); reason != "" {
		t.Fatalf("second connection of the live client refused: %q", reason)
	}
	if _, _, reason := g.acquire(live); reason != ReasonPerClient {
		t.Fatalf("third connection of the live client: %q, want %q", reason, ReasonPerClient)
	}
	for _, s := range taken {
		g.release(s.key, s.perClient)
	}
	g.release(liveKey, true)
	g.release(liveKey, true)
	if g.Open() != 0 || g.clients() != 0 {
		t.Fatalf("after releasing everything: Open() = %d, clients = %d", g.Open(), g.clients())
	}
	if _, _, reason := g.acquire(addr(300_000)); reason != "" {
		t.Fatalf("new client refused after the table emptied: %q", reason)
	}
}

func TestUpdateKeepsLiveCounts(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 3, ConnectionsTotal: 100, HandshakesPerClient: units.Rate{Count: 2, Per: time.Second}})
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	s := startServer(t, g)
	var held []net.Conn
	for range 3 {
		_, sc := s.admitted("127.0.0.1")
		held = append(held, sc)
	}
	ip := netip.MustParseAddr("198.51.100.1")
	g.AllowHandshake(ip)
	g.AllowHandshake(ip)

	g.Update(Config{ConnectionsPerClient: 1, ConnectionsTotal: 100, HandshakesPerClient: units.Rate{Count: 10, Per: time.Second}})
	if g.Open() != 3 {
		t.Fatalf("Open() = %d after Update, want the 3 live connections", g.Open())
	}
	s.refused("127.0.0.1")
	_ = held[0].Close()
	_ = held[1].Close()
	waitFor(t, "two releases", func() bool { return g.Open() == 1 })
	s.refused("127.0.0.1") // one still open, new cap is 1
	_ = held[2].Close()
	waitFor(t, "last release", func() bool { return g.Open() == 0 })
	s.admitted("127.0.0.1")

	now = now.Add(time.Second) // the old bucket refills at the new rate, up to the new burst
	n := 0
	for range 20 {
		if g.AllowHandshake(ip) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d handshakes allowed after raising the rate to 10/s, want 10", n)
	}

	g.Update(Config{ConnectionsPerClient: 5, ConnectionsTotal: 1})
	s.refused("127.0.0.2") // total now 1, one connection open
}

func TestRefusalsAreLoggedOncePerClientPerInterval(t *testing.T) {
	log := observetest.Security(t)

	g := New(Config{ConnectionsPerClient: 1, ConnectionsTotal: 100})
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	g.acquire(a)
	g.acquire(b)
	before := counterValue(t, refusedTotal.WithLabelValues(ReasonPerClient))
	for range 50 {
		if _, _, reason := g.acquire(a); reason != ReasonPerClient {
			t.Fatalf("reason = %q", reason)
		}
		g.refuse(ReasonPerClient, a, state.ClientUnit(a))
	}
	g.refuse(ReasonPerClient, b, state.ClientUnit(b))
	now = now.Add(LogInterval)
	g.refuse(ReasonPerClient, a, state.ClientUnit(a))

	text := log.String()
	lines := strings.Count(text, "\n")
	if lines != 3 {
		t.Fatalf("%d security events logged, want 3 (first of a, first of b, a after the interval):\n%s", lines, text)
	}
	if !strings.Contains(text, `"stage":"connguard"`) || !strings.Contains(text, `"reason":"per-client-cap"`) || !strings.Contains(text, `"client":"198.51.100.1"`) {
		t.Fatalf("event lacks stage, reason or client: %s", text)
	}
	if got := counterValue(t, refusedTotal.WithLabelValues(ReasonPerClient)) - before; got != 52 {
		t.Fatalf("rampart_connections_refused_total grew by %v, want every refusal (52)", got)
	}
}

// flakyListener fails its first Accept calls with a temporary error.
type flakyListener struct {
	net.Listener
	failures int
}

type tempErr struct{}

func (tempErr) Error() string   { return "too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

func (f *flakyListener) Accept() (net.Conn, error) {
	if f.failures > 0 {
		f.failures--
		return nil, tempErr{}
	}
	return f.Listener.Accept()
}

func TestTemporaryAcceptErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gl := New(Config{}).Listener(&flakyListener{Listener: ln, failures: 3})
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := gl.Accept()
	if err != nil {
		t.Fatalf("Accept() = %v, want the connection after retrying", err)
	}
	_ = c.Close()
	_ = ln.Close()
	if _, err := gl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept() on a closed listener = %v, want net.ErrClosed", err)
	}
}

func TestConnectionsWithoutAnIPCountTowardsTheTotalOnly(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 1, ConnectionsTotal: 2})
	for range 2 {
		if _, pc, reason := g.acquire(netip.Addr{}); reason != "" || pc {
			t.Fatalf("acquire(no address) = %v, %q", pc, reason)
		}
	}
	if _, _, reason := g.acquire(netip.Addr{}); reason != ReasonTotal {
		t.Fatalf("third = %q, want %q", reason, ReasonTotal)
	}
	if g.clients() != 0 {
		t.Fatal("a connection without an address created a per-client entry")
	}
}

func TestSharedPeerIsSubjectToTheTotalOnly(t *testing.T) {
	g := New(Config{ConnectionsPerClient: 1, ConnectionsTotal: 3})
	lb := netip.MustParseAddr("10.0.0.1")
	g.SetSharedPeer(func(ip netip.Addr) bool { return ip == lb })
	for range 3 {
		if _, _, reason := g.acquire(lb); reason != "" {
			t.Fatalf("shared peer refused: %q", reason)
		}
	}
	if _, _, reason := g.acquire(lb); reason != ReasonTotal {
		t.Fatalf("fourth = %q, want %q", reason, ReasonTotal)
	}
	g.SetSharedPeer(nil)
	if g.isShared(lb) {
		t.Fatal("SetSharedPeer(nil) did not clear it")
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	g := New(Config{})
	ip := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		key, pc, _ := g.acquire(ip)
		g.release(key, pc)
	}
}

func BenchmarkAllowHandshake(b *testing.B) {
	g := New(Config{HandshakesPerClient: units.Rate{Count: 1 << 30, Per: time.Second}})
	ips := make([]netip.Addr, 1024)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.AllowHandshake(ips[i&1023])
		i++
	}
}
