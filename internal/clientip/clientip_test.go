package clientip

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

func mustNew(t testing.TB, cfg Config) *Resolver {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return r
}

// serve runs req through the resolver's handler and returns the Info the
// next stage saw and the headers it received.
func serve(t testing.TB, r *Resolver, peer string, headers http.Header) (*reqinfo.Info, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	info := &reqinfo.Info{}
	if peer != "" {
		info.Peer = netip.MustParseAddrPort(peer)
		req.RemoteAddr = peer
	}
	for k, vs := range headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	req = req.WithContext(reqinfo.With(req.Context(), info))
	var seen http.Header
	r.Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		seen = req.Header.Clone()
	})).ServeHTTP(httptest.NewRecorder(), req)
	return info, seen
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"empty config is valid", Config{}, ""},
		{"ranges and single addresses are valid", Config{
			TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.0/120"},
			ClientIP:       Source{Header: "X-Forwarded-For"},
			Exempt:         []string{"192.0.2.10/32"},
		}, ""},
		{"custom header is valid", Config{TrustedProxies: []string{"10.0.0.1"}, ClientIP: Source{Header: "X-Client-IP"}}, ""},
		{"proxy protocol is valid", Config{TrustedProxies: []string{"10.0.0.1"}, ClientIP: Source{ProxyProtocol: true}}, ""},
		{"bad CIDR in trusted_proxies is refused", Config{TrustedProxies: []string{"10.0.0.0/33"}}, "trusted_proxies[0]: \"10.0.0.0/33\" is not a CIDR range"},
		{"garbage in exempt is refused", Config{Exempt: []string{"office"}}, "exempt[0]: \"office\" is not an address or CIDR range"},
		{"host bits after the prefix length are refused", Config{TrustedProxies: []string{"10.0.0.1/8"}}, "write 10.0.0.0/8 for the network or 10.0.0.1/32"},
		{"zoned address is refused", Config{Exempt: []string{"fe80::1%eth0"}}, "not an address or CIDR range"},
		{"mapped range wider than /96 is refused", Config{TrustedProxies: []string{"::ffff:0:0/90"}}, "has bits set after the prefix length"},
		{"header and proxy_protocol together are refused", Config{
			TrustedProxies: []string{"10.0.0.1"},
			ClientIP:       Source{Header: "X-Forwarded-For", ProxyProtocol: true},
		}, "header and proxy_protocol are exclusive"},
		{"invalid header name is refused", Config{ClientIP: Source{Header: "X Client"}}, "not a valid header name"},
		{"Forwarded header is refused", Config{ClientIP: Source{Header: "forwarded"}}, "Forwarded header is not supported"},
		{"proxy protocol without trusted proxies is refused", Config{ClientIP: Source{ProxyProtocol: true}}, "trusted_proxies is empty"},
		{"every mistake is reported", Config{TrustedProxies: []string{"x"}, Exempt: []string{"y"}}, "exempt[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := New(tt.cfg); err != nil {
					t.Fatalf("New() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New() accepted an invalid config")
			}
		})
	}
}

func TestConfigWarnings(t *testing.T) {
	const everyone = "trusted_proxies includes every address: any client can forge its identity"
	tests := []struct {
		name string
		cfg  Config
		want string // "" means no warning
	}{
		{"narrow trusted range warns nothing", Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Forwarded-For"}}, ""},
		{"0.0.0.0/0 warns that anyone can forge", Config{TrustedProxies: []string{"0.0.0.0/0"}, ClientIP: Source{Header: "X-Forwarded-For"}}, everyone},
		{"::/0 warns that anyone can forge", Config{TrustedProxies: []string{"::/0"}, ClientIP: Source{Header: "X-Forwarded-For"}}, everyone},
		{"mapped ::ffff:0:0/96 warns that anyone can forge", Config{TrustedProxies: []string{"::ffff:0:0/96"}, ClientIP: Source{Header: "X-Forwarded-For"}}, everyone},
		{"header without trusted proxies warns", Config{ClientIP: Source{Header: "X-Forwarded-For"}}, "the header is never believed"},
		{"trusted proxies without a source warns", Config{TrustedProxies: []string{"10.0.0.1"}}, "client_ip names no source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			got := strings.Join(tt.cfg.Warnings(), "\n")
			if tt.want == "" && got != "" {
				t.Fatalf("Warnings() = %q, want none", got)
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("Warnings() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHandlerXForwardedFor(t *testing.T) {
	r := mustNew(t, Config{
		TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48"},
		ClientIP:       Source{Header: "x-forwarded-for"},
	})
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer without header is the client", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"untrusted peer with spoofed header is the client", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer spoofing a trusted address is the client", "203.0.113.9:5000", []string{"10.0.0.1"}, "203.0.113.9"},
		{"trusted peer without header is the client", "10.0.0.2:5000", nil, "10.0.0.2"},
		{"trusted peer reports the client", "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted address wins over forged ones to its left", "10.0.0.2:5000", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies is skipped", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1, 10.1.1.1, 10.2.2.2"}, "198.51.100.1"},
		{"header lines are walked together from the last", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1", "10.1.1.1", "10.2.2.2"}, "198.51.100.1"},
		{"client in an earlier line is found", "10.0.0.2:5000", []string{"198.51.100.1", "10.1.1.1, 10.2.2.2"}, "198.51.100.1"},
		{"all trusted yields the leftmost", "10.0.0.2:5000", []string{"10.3.3.3, 10.1.1.1"}, "10.3.3.3"},
		{"garbage rightmost stops at the peer", "10.0.0.2:5000", []string{"198.51.100.1, garbage"}, "10.0.0.2"},
		{"garbage after a trusted hop stops at that hop", "10.0.0.2:5000", []string{"198.51.100.1, unknown, 10.1.1.1"}, "10.1.1.1"},
		{"garbage left of the client is never reached", "10.0.0.2:5000", []string{"<script>, 198.51.100.1"}, "198.51.100.1"},
		{"empty elements and whitespace are skipped", "10.0.0.2:5000", []string{" ,\t198.51.100.1 , ,"}, "198.51.100.1"},
		{"empty header line is skipped", "10.0.0.2:5000", []string{"198.51.100.1", ""}, "198.51.100.1"},
		{"IPv4 with port is accepted", "10.0.0.2:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"IPv6 client", "10.0.0.2:5000", []string{"2001:db8:1::7"}, "2001:db8:1::7"},
		{"bracketed IPv6 with port", "10.0.0.2:5000", []string{"[2001:db8:1::7]:443"}, "2001:db8:1::7"},
		{"IPv6 trusted peer and IPv6 chain", "[2001:db8:ffff::1]:443", []string{"2001:db8:1::7, 2001:db8:ffff::2"}, "2001:db8:1::7"},
		{"zoned IPv6 is garbage", "10.0.0.2:5000", []string{"198.51.100.1, fe80::1%eth0"}, "10.0.0.2"},
		{"mapped IPv4 client is unmapped", "10.0.0.2:5000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"mapped IPv4 trusted hop is recognised", "10.0.0.2:5000", []string{"198.51.100.1, ::ffff:10.9.9.9"}, "198.51.100.1"},
		{"mapped IPv4 trusted peer is recognised", "[::ffff:10.0.0.2]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"mapped IPv4 untrusted peer is unmapped", "[::ffff:203.0.113.9]:5000", []string{"198.51.100.1"}, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.xff != nil {
				h["X-Forwarded-For"] = tt.xff
			}
			info, seen := serve(t, r, tt.peer, h)
			if got := info.Client.String(); got != tt.want {
				t.Fatalf("Client = %s, want %s", got, tt.want)
			}
			if v, ok := seen["X-Forwarded-For"]; ok {
				t.Fatalf("X-Forwarded-For reached the next stage: %q", v)
			}
		})
	}
}

func TestHandlerSingleHeader(t *testing.T) {
	r := mustNew(t, Config{
		TrustedProxies: []string{"10.0.0.0/8"},
		ClientIP:       Source{Header: "X-Client-IP"},
	})
	tests := []struct {
		name    string
		peer    string
		headers http.Header
		want    string
	}{
		{"trusted peer reports the client", "10.0.0.2:1", http.Header{"X-Client-Ip": {"198.51.100.1"}}, "198.51.100.1"},
		{"surrounding whitespace is allowed", "10.0.0.2:1", http.Header{"X-Client-Ip": {" 198.51.100.1 "}}, "198.51.100.1"},
		{"IPv6 value", "10.0.0.2:1", http.Header{"X-Client-Ip": {"2001:db8::5"}}, "2001:db8::5"},
		{"mapped value is unmapped", "10.0.0.2:1", http.Header{"X-Client-Ip": {"::ffff:198.51.100.1"}}, "198.51.100.1"},
		{"invalid value falls back to the peer", "10.0.0.2:1", http.Header{"X-Client-Ip": {"198.51.100.1, 1.1.1.1"}}, "10.0.0.2"},
		{"two header lines fall back to the peer", "10.0.0.2:1", http.Header{"X-Client-Ip": {"198.51.100.1", "1.1.1.1"}}, "10.0.0.2"},
		{"missing header leaves the peer", "10.0.0.2:1", nil, "10.0.0.2"},
		{"untrusted peer is not believed", "203.0.113.9:1", http.Header{"X-Client-Ip": {"198.51.100.1"}}, "203.0.113.9"},
		{"X-Forwarded-For is not consulted in header mode", "10.0.0.2:1", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, seen := serve(t, r, tt.peer, tt.headers)
			if got := info.Client.String(); got != tt.want {
				t.Fatalf("Client = %s, want %s", got, tt.want)
			}
			if v, ok := seen["X-Client-Ip"]; ok {
				t.Fatalf("X-Client-IP reached the next stage: %q", v)
			}
		})
	}
}

func TestHandlerStripsForwardingHeadersInEveryMode(t *testing.T) {
	spoofed := http.Header{
		"X-Forwarded-For":   {"1.1.1.1"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Proto": {"http"},
		"X-Real-Ip":         {"1.1.1.1"},
		"Forwarded":         {"for=1.1.1.1"},
		"X-Client-Ip":       {"1.1.1.1"},
		"True-Client-Ip":    {"1.1.1.1"},
		"X-Origin-Ip":       {"1.1.1.1"},
		"X_forwarded_for":   {"1.1.1.1"},
		"x-real-ip":         {"1.1.1.1"},
		"Accept":            {"*/*"},
		"Cookie":            {"a=b"},
	}
	modes := []struct {
		name string
		cfg  Config
	}{
		{"no source", Config{}},
		{"X-Forwarded-For", Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Forwarded-For"}}},
		{"X-Client-IP", Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Client-IP"}}},
		{"custom X-Origin-IP", Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Origin-IP"}}},
		{"proxy protocol", Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{ProxyProtocol: true}}},
	}
	for _, m := range modes {
		for _, peer := range []string{"10.0.0.2:1", "203.0.113.9:1"} {
			t.Run(m.name+" from "+peer, func(t *testing.T) {
				_, seen := serve(t, mustNew(t, m.cfg), peer, spoofed)
				want := []string{"Accept", "Cookie"}
				if m.cfg.ClientIP.Header != "X-Origin-IP" {
					want = append(want, "X-Origin-Ip") // not a forwarding header unless configured
				}
				if len(seen) != len(want) {
					t.Fatalf("next stage saw headers %v, want only %v", seen, want)
				}
				for _, k := range want {
					if _, ok := seen[k]; !ok {
						t.Fatalf("header %s was removed; saw %v", k, seen)
					}
				}
			})
		}
	}
}

func TestHandlerProxyProtocolModeIgnoresHeaders(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{ProxyProtocol: true}})
	// The listener already replaced the peer with the client the PROXY
	// header named; a header from the (trusted-looking) client is ignored.
	info, _ := serve(t, r, "10.0.0.2:1", http.Header{"X-Forwarded-For": {"198.51.100.1"}})
	if got := info.Client.String(); got != "10.0.0.2" {
		t.Fatalf("Client = %s, want the connection's address 10.0.0.2", got)
	}
	if !r.ProxyProtocol() {
		t.Fatal("ProxyProtocol() = false")
	}
}

func TestHandlerExempt(t *testing.T) {
	r := mustNew(t, Config{
		TrustedProxies: []string{"10.0.0.0/8"},
		ClientIP:       Source{Header: "X-Forwarded-For"},
		Exempt:         []string{"192.0.2.10/32", "2001:db8:e::/48", "::ffff:198.51.100.0/120"},
	})
	tests := []struct {
		name string
		peer string
		xff  string
		want bool
	}{
		{"exempt peer", "192.0.2.10:1", "", true},
		{"neighbour of exempt peer", "192.0.2.11:1", "", false},
		{"exempt client behind a trusted proxy", "10.0.0.2:1", "192.0.2.10", true},
		{"exemption cannot be forged through an untrusted peer", "203.0.113.9:1", "192.0.2.10", false},
		{"exempt IPv6 range", "[2001:db8:e::99]:1", "", true},
		{"mapped exempt range matches IPv4 client", "198.51.100.77:1", "", true},
		{"trusted proxy itself is not exempt", "10.0.0.2:1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.xff != "" {
				h.Set("X-Forwarded-For", tt.xff)
			}
			info, _ := serve(t, r, tt.peer, h)
			if info.Exempt != tt.want {
				t.Fatalf("Exempt = %v for client %s, want %v", info.Exempt, info.Client, tt.want)
			}
		})
	}
}

func TestHandlerFallsBackToRemoteAddr(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Forwarded-For"}})
	tests := []struct {
		name, remote, want string
	}{
		{"host and port", "10.0.0.2:1234", "198.51.100.1"},
		{"bare address", "203.0.113.9", "203.0.113.9"},
		{"unix socket yields no client", "@", "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tt.remote
			req.Header.Set("X-Forwarded-For", "198.51.100.1")
			info := &reqinfo.Info{}
			req = req.WithContext(reqinfo.With(req.Context(), info))
			r.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), req)
			if got := info.Client.String(); got != tt.want {
				t.Fatalf("Client = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSharedPeer(t *testing.T) {
	trusted := []string{"10.0.0.0/8"}
	tests := []struct {
		name string
		cfg  Config
		peer string
		want bool
	}{
		{"trusted peer in header mode carries many clients", Config{TrustedProxies: trusted, ClientIP: Source{Header: "X-Forwarded-For"}}, "10.0.0.2", true},
		{"mapped trusted peer", Config{TrustedProxies: trusted, ClientIP: Source{Header: "X-Client-IP"}}, "::ffff:10.0.0.2", true},
		{"untrusted peer", Config{TrustedProxies: trusted, ClientIP: Source{Header: "X-Forwarded-For"}}, "203.0.113.9", false},
		{"proxy protocol connections are already the client", Config{TrustedProxies: trusted, ClientIP: Source{ProxyProtocol: true}}, "10.0.0.2", false},
		{"no source configured", Config{TrustedProxies: trusted}, "10.0.0.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustNew(t, tt.cfg).SharedPeer(netip.MustParseAddr(tt.peer)); got != tt.want {
				t.Fatalf("SharedPeer(%s) = %v, want %v", tt.peer, got, tt.want)
			}
		})
	}
}

func TestHandlerCommonPathDoesNotAllocate(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIP: Source{Header: "X-Forwarded-For"}, Exempt: []string{"192.0.2.0/24"}})
	h, req := benchRequest(r, "203.0.113.9:443")
	if n := testing.AllocsPerRun(200, func() { h.ServeHTTP(nil, req) }); n != 0 {
		t.Fatalf("%v allocations per request without forwarding headers, want 0", n)
	}
}

func benchRequest(r *Resolver, peer string) (http.Handler, *http.Request) {
	req := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept-Encoding", "gzip")
	req.RemoteAddr = peer
	info := &reqinfo.Info{Peer: netip.MustParseAddrPort(peer)}
	req = req.WithContext(reqinfo.With(req.Context(), info))
	return r.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})), req
}

func BenchmarkHandler(b *testing.B) {
	r := mustNew(b, Config{
		TrustedProxies: []string{"10.0.0.0/8", "172.16.0.0/12", "2001:db8:ffff::/48"},
		ClientIP:       Source{Header: "X-Forwarded-For"},
		Exempt:         []string{"192.0.2.0/24"},
	})
	b.Run("untrusted peer, no forwarding header", func(b *testing.B) {
		h, req := benchRequest(r, "203.0.113.9:443")
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(nil, req)
		}
	})
	b.Run("untrusted peer, spoofed headers stripped", func(b *testing.B) {
		h, req := benchRequest(r, "203.0.113.9:443")
		xff, real := []string{"1.1.1.1"}, []string{"1.1.1.1"}
		b.ReportAllocs()
		for b.Loop() {
			req.Header["X-Forwarded-For"], req.Header["X-Real-Ip"] = xff, real
			h.ServeHTTP(nil, req)
		}
	})
	b.Run("trusted peer, X-Forwarded-For with three hops", func(b *testing.B) {
		h, req := benchRequest(r, "10.0.0.2:443")
		xff := []string{"1.1.1.1, 198.51.100.1, 172.16.0.9, 10.1.1.1"}
		b.ReportAllocs()
		for b.Loop() {
			req.Header["X-Forwarded-For"] = xff
			h.ServeHTTP(nil, req)
		}
	})
}
