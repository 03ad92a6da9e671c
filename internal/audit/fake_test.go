package audit

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCA signs leaf certificates with chosen names and validity.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	file string // PEM of the CA certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "audit unit CA"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

type leafOpts struct {
	names     []string
	notBefore time.Time
	notAfter  time.Time
	rsa       bool
	ocsp      string
}

func (ca *testCA) leaf(t *testing.T, o leafOpts) tls.Certificate {
	t.Helper()
	if len(o.names) == 0 {
		o.names = []string{"app.test", "www.app.test", "127.0.0.1"}
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	var key crypto.Signer
	var err error
	if o.rsa {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: o.names[0]},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.ocsp != "" {
		tmpl.OCSPServer = []string{o.ocsp}
	}
	for _, n := range o.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// rawReq is a request as the fake server read it.
type rawReq struct {
	Method, Target, Proto string
	Host                  string
	SNI                   string
	Header                map[string][]string // lower-case names
	Lines                 []string            // header lines as received
	Body                  string
}

func (r *rawReq) get(name string) string {
	if v := r.Header[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// rawResp is what the fake answers.
type rawResp struct {
	Status  int
	Headers []string
	Body    string
	Close   bool
}

// fake is an HTTPS server that parses request heads loosely and answers
// whatever its handler says, so that each test can play one kind of proxy.
type fake struct {
	addr     string
	ca       *testCA
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	mu       sync.Mutex
	seen     []rawReq
}

func (f *fake) target() string { return "https://" + f.addr }

func (f *fake) reqs() []rawReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rawReq(nil), f.seen...)
}

// startFake serves h over TLS with conf (nil: a modern default with a
// certificate for app.test and www.app.test).
func startFake(t *testing.T, conf *tls.Config, h func(*rawReq) rawResp) *fake {
	t.Helper()
	f := &fake{ca: newTestCA(t)}
	if conf == nil {
		conf = &tls.Config{SessionTicketsDisabled: true, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		}}
	}
	if len(conf.Certificates) == 0 {
		conf.Certificates = []tls.Certificate{f.ca.leaf(t, leafOpts{})}
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c.(*tls.Conn), h) })
		}
	})
	return f
}

func (f *fake) serve(c *tls.Conn, h func(*rawReq) rawResp) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	sni := c.ConnectionState().ServerName
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue // an empty line before a request is skipped
		}
		parts := strings.SplitN(line, " ", 3)
		if len(parts) != 3 {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		r := &rawReq{Method: parts[0], Target: parts[1], Proto: parts[2], SNI: sni, Header: map[string][]string{}}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "" {
				break
			}
			r.Lines = append(r.Lines, l)
			if k, v, ok := strings.Cut(l, ":"); ok {
				k = strings.ToLower(k) // "Name :" keeps its space
				r.Header[k] = append(r.Header[k], strings.TrimSpace(v))
			}
		}
		r.Host = r.get("host")
		if n, err := strconv.Atoi(r.get("content-length")); err == nil && n > 0 {
			buf := make([]byte, n)
			if _, err := io.ReadFull(br, buf); err != nil {
				return
			}
			r.Body = string(buf)
		}
		f.requests.Add(1)
		in := f.inFlight.Add(1)
		for {
			m := f.maxIn.Load()
			if in <= m || f.maxIn.CompareAndSwap(m, in) {
				break
			}
		}
		f.mu.Lock()
		f.seen = append(f.seen, *r)
		f.mu.Unlock()
		resp := h(r)
		f.inFlight.Add(-1)
		if resp.Status == 0 { // close without an answer
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", resp.Status, http.StatusText(resp.Status))
		for _, hl := range resp.Headers {
			b.WriteString(hl + "\r\n")
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(resp.Body))
		if resp.Close || r.get("connection") == "close" || r.Proto == "HTTP/1.0" {
			b.WriteString("Connection: close\r\n")
			resp.Close = true
		}
		b.WriteString("\r\n")
		if r.Method != "HEAD" {
			b.WriteString(resp.Body)
		}
		if _, err := io.WriteString(c, b.String()); err != nil || resp.Close {
			return
		}
	}
}

// testOptions are Options for a fake: fast pacing, the fake's CA.
func testOptions(f *fake) Options {
	return Options{
		Target:        f.target(),
		Hosts:         []string{"app.test"},
		CAFile:        f.ca.file,
		Timeout:       2 * time.Second,
		HandshakeRate: 1000,
	}
}

// newTestAuditor builds an auditor for running single check groups.
func newTestAuditor(t *testing.T, o Options) *auditor {
	t.Helper()
	tgt, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	a := newAuditor(tgt)
	t.Cleanup(a.closeIdle)
	return a
}

func checkMap(a *auditor) map[string]Check {
	m := map[string]Check{}
	for _, c := range a.checks {
		m[c.ID] = c
	}
	return m
}

// want asserts the statuses of checks.
func want(t *testing.T, got map[string]Check, statuses map[string]Status) {
	t.Helper()
	for id, st := range statuses {
		c, ok := got[id]
		if !ok {
			t.Errorf("%s: not in the results", id)
			continue
		}
		if c.Status != st {
			t.Errorf("%s = %s (%s), want %s", id, c.Status, c.Evidence, st)
		}
	}
}

// strictSite plays a careful proxy for app.test: refuses other hosts,
// other methods, HTTP/1.0, ambiguous framing and odd paths.
func strictSite(port string) func(*rawReq) rawResp {
	return func(r *rawReq) rawResp {
		hdrs := []string{"Strict-Transport-Security: max-age=31536000", "X-Content-Type-Options: nosniff", "X-Frame-Options: DENY"}
		for _, l := range r.Lines {
			if k, _, _ := strings.Cut(l, ":"); strings.ContainsAny(k, " \t") {
				return rawResp{Status: 400, Close: true} // obs-fold, "Name :"
			}
		}
		switch {
		case r.Proto != "HTTP/1.1":
			return rawResp{Status: 505, Close: true}
		case len(r.Header["content-length"]) > 1 || r.get("transfer-encoding") != "" || len(r.Header["transfer-encoding"]) > 0:
			return rawResp{Status: 400, Close: true}
		case strings.ContainsAny(r.Target, `\;%`) || strings.Contains(r.Target, "/.") || strings.Contains(r.Target, "//"):
			return rawResp{Status: 400, Close: true}
		case r.Host == "" || len(r.Header["host"]) != 1:
			return rawResp{Status: 400, Close: true}
		case r.Host != "app.test:"+port || r.SNI != "app.test" || !strings.HasPrefix(r.Target, "/"):
			return rawResp{Status: 421, Close: true}
		case r.Method != "GET" && r.Method != "HEAD":
			return rawResp{Status: 405, Headers: append(hdrs, "Allow: GET, HEAD")}
		case strings.HasPrefix(r.Target, "/admin/"):
			return rawResp{Status: 403, Headers: hdrs, Body: "forbidden"}
		case r.Target == "/" || strings.HasPrefix(r.Target, "/api/"):
			return rawResp{Status: 200, Headers: append(hdrs, "Set-Cookie: sid=1; Secure; HttpOnly"), Body: "<h1>home</h1> " + r.Target}
		}
		return rawResp{Status: 404, Headers: hdrs, Body: "not found"}
	}
}

func portOf(f *fake) string { return portOfAddr(f.addr) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
