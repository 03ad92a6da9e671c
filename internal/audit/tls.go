package audit

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// tlsVersions are probed one at a time, each the only version offered.
var tlsVersions = []struct {
	id   string
	name string
	v    uint16
}{
	{"tls.version.1.0", "TLS 1.0", tls.VersionTLS10},
	{"tls.version.1.1", "TLS 1.1", tls.VersionTLS11},
	{"tls.version.1.2", "TLS 1.2", tls.VersionTLS12},
	{"tls.version.1.3", "TLS 1.3", tls.VersionTLS13},
}

// weakSuites are offered alone over TLS 1.2; accepting any is a finding.
var weakSuites = []struct {
	id     string
	what   string
	status Status
	suites []uint16
}{
	{"tls.cipher.cbc", "CBC-mode suites (ECDHE, no AEAD)", Warn, []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	}},
	{"tls.cipher.rsa-kex", "RSA key exchange suites (no forward secrecy)", Fail, []uint16{
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	}},
	{"tls.cipher.3des", "3DES suites (64-bit block, Sweet32)", Fail, []uint16{
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	}},
	{"tls.cipher.rc4", "RC4 suites", Fail, []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_RC4_128_SHA,
	}},
}

// handshake tries one handshake with conf; a nil error means accepted.
// A refusal returns the error; unreachable reports a network failure that
// says nothing about the TLS policy.
func (a *auditor) handshake(ctx context.Context, conf *tls.Config) (st tls.ConnectionState, unreachable bool, err error) {
	if !a.take() {
		return st, true, errBudget
	}
	c, err := a.dialTLS(ctx, conf)
	if err != nil {
		return st, !isHandshakeRefusal(err), err
	}
	st = c.ConnectionState()
	_ = c.Close()
	return st, false, nil
}

func (a *auditor) probeConf(minV, maxV uint16, suites []uint16) *tls.Config {
	return &tls.Config{
		ServerName:         a.t.sni,
		InsecureSkipVerify: true, // the chain is verified by tls.cert.chain
		MinVersion:         minV,
		MaxVersion:         maxV,
		CipherSuites:       suites,
		NextProtos:         []string{"http/1.1"},
	}
}

func refusalText(err error) string {
	if err == errBudget {
		return "request budget exhausted; not probed"
	}
	if closedEarly(err) {
		return "refused: connection closed during the handshake"
	}
	return "refused: " + clip(err.Error(), 120)
}

func (a *auditor) runTLS(ctx context.Context) {
	accepted := map[uint16]bool{}
	var certState *tls.ConnectionState
	for _, tv := range tlsVersions {
		st, unreachable, err := a.handshake(ctx, a.probeConf(tv.v, tv.v, allSuites()))
		switch {
		case err == errBudget:
			a.skipBudget(CatTLS, tv.id)
			continue
		case unreachable:
			a.add(CatTLS, tv.id, Skip, "no answer: %s", clip(err.Error(), 120))
			continue
		case err != nil:
			st := Pass
			if tv.v == tls.VersionTLS13 {
				st = Warn
			}
			a.add(CatTLS, tv.id, st, "%s %s", tv.name, refusalText(err))
			continue
		}
		accepted[tv.v] = true
		if certState == nil || tv.v >= tls.VersionTLS12 {
			s := st
			certState = &s
		}
		if tv.v < tls.VersionTLS12 {
			a.add(CatTLS, tv.id, Fail, "%s accepted (%s): broken protocol version", tv.name, tls.CipherSuiteName(st.CipherSuite))
		} else {
			a.add(CatTLS, tv.id, Pass, "%s accepted (%s)", tv.name, tls.CipherSuiteName(st.CipherSuite))
		}
	}

	for _, ws := range weakSuites {
		if !accepted[tls.VersionTLS12] {
			a.add(CatTLS, ws.id, Skip, "TLS 1.2 not accepted; suites of TLS 1.2 not probed")
			continue
		}
		st, unreachable, err := a.handshake(ctx, a.probeConf(tls.VersionTLS12, tls.VersionTLS12, ws.suites))
		switch {
		case err == errBudget:
			a.skipBudget(CatTLS, ws.id)
		case unreachable:
			a.add(CatTLS, ws.id, Skip, "no answer: %s", clip(err.Error(), 120))
		case err != nil:
			a.add(CatTLS, ws.id, Pass, "%s offered alone over TLS 1.2: %s", ws.what, refusalText(err))
		default:
			a.add(CatTLS, ws.id, ws.status, "%s accepted over TLS 1.2: server chose %s", ws.what, tls.CipherSuiteName(st.CipherSuite))
		}
	}

	a.certChecks(certState)
	a.resumption(ctx, accepted)
}

// certChecks verifies the chain the target presented.
func (a *auditor) certChecks(st *tls.ConnectionState) {
	ids := []string{"tls.cert.chain", "tls.cert.expiry", "tls.cert.hostname", "tls.ocsp"}
	if st == nil || len(st.PeerCertificates) == 0 {
		for _, id := range ids {
			a.add(CatTLS, id, Skip, "no handshake completed; no certificate to check")
		}
		return
	}
	leaf := st.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	subject := certName(leaf)
	bad := Fail
	note := ""
	if a.t.insecure {
		bad, note = Warn, " (--insecure: reported as a warning)"
	}
	roots := "system roots"
	if a.t.roots != nil {
		roots = "--ca roots"
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.t.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		a.add(CatTLS, "tls.cert.chain", bad, "%s issued by %q does not verify against the %s: %s%s", subject, leaf.Issuer.CommonName, roots, clip(err.Error(), 160), note)
	} else {
		a.add(CatTLS, "tls.cert.chain", Pass, "%s issued by %q verifies against the %s (%d certificates sent)", subject, leaf.Issuer.CommonName, roots, len(st.PeerCertificates))
	}

	now := time.Now()
	left := leaf.NotAfter.Sub(now)
	switch {
	case now.Before(leaf.NotBefore):
		a.add(CatTLS, "tls.cert.expiry", Fail, "not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		a.add(CatTLS, "tls.cert.expiry", Fail, "expired %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < 30*24*time.Hour:
		a.add(CatTLS, "tls.cert.expiry", Warn, "expires %s, in %s (less than 30 days)", leaf.NotAfter.UTC().Format(time.RFC3339), roundDur(left))
	default:
		a.add(CatTLS, "tls.cert.expiry", Pass, "valid until %s (%d days)", leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
	}

	var mismatched []string
	for _, h := range a.t.hosts {
		if err := leaf.VerifyHostname(strings.Trim(h, "[]")); err != nil {
			mismatched = append(mismatched, h)
		}
	}
	names := slices.Concat(leaf.DNSNames, ipStrings(leaf))
	if len(mismatched) > 0 {
		a.add(CatTLS, "tls.cert.hostname", bad, "certificate names [%s], not %s%s", strings.Join(names, " "), strings.Join(mismatched, ", "), note)
	} else {
		a.add(CatTLS, "tls.cert.hostname", Pass, "certificate covers %s (names: %s)", strings.Join(a.t.hosts, ", "), clip(strings.Join(names, " "), 160))
	}

	switch {
	case len(st.OCSPResponse) > 0:
		a.add(CatTLS, "tls.ocsp", Pass, "OCSP response stapled (%d bytes)", len(st.OCSPResponse))
	case len(leaf.OCSPServer) == 0:
		a.add(CatTLS, "tls.ocsp", Skip, "certificate names no OCSP responder; stapling does not apply")
	default:
		a.add(CatTLS, "tls.ocsp", Warn, "no OCSP response stapled although the certificate names %s", leaf.OCSPServer[0])
	}
}

func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	if len(c.DNSNames) > 0 {
		return fmt.Sprintf("%q", c.DNSNames[0])
	}
	return "certificate"
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func roundDur(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Round(time.Minute).String()
}

// resumption connects twice with a session cache. The first connection
// carries one HEAD request so that TLS 1.3 tickets, sent after the
// handshake, are read.
func (a *auditor) resumption(ctx context.Context, accepted map[uint16]bool) {
	const id = "tls.session-ticket"
	var resumed, fresh []string
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if !accepted[v] {
			continue
		}
		name := map[uint16]string{tls.VersionTLS12: "TLS 1.2", tls.VersionTLS13: "TLS 1.3"}[v]
		first, second := a.take(), a.take() // a fresh and a resumed handshake
		if !first || !second {
			a.skipBudget(CatTLS, id)
			return
		}
		conf := a.probeConf(v, v, allSuites())
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		c, err := a.dialTLS(ctx, conf)
		if err != nil {
			continue
		}
		_, _ = exchange(c, bufio.NewReader(c), "HEAD", a.req("HEAD", "/", "Connection: close"), a.t.timeout)
		_ = c.Close()
		c2, err := a.dialTLS(ctx, conf)
		if err != nil {
			continue
		}
		if c2.ConnectionState().DidResume {
			resumed = append(resumed, name)
		} else {
			fresh = append(fresh, name)
		}
		_ = c2.Close()
	}
	switch {
	case len(resumed) > 0:
		a.add(CatTLS, id, Warn, "session resumed from a ticket over %s: resumed sessions reuse key material across connections", strings.Join(resumed, ", "))
	case len(fresh) > 0:
		a.add(CatTLS, id, Pass, "no resumption over %s (full handshake on reconnect)", strings.Join(fresh, ", "))
	default:
		a.add(CatTLS, id, Skip, "no TLS 1.2/1.3 connection to test resumption on")
	}
}

// hsts checks Strict-Transport-Security on the root page.
func (a *auditor) hsts() {
	const id = "tls.hsts"
	r := a.root
	if r == nil || !r.answered() {
		a.add(CatTLS, id, Skip, "GET / got no response: %s", r)
		return
	}
	v := r.Header.Get("Strict-Transport-Security")
	if v == "" {
		a.add(CatTLS, id, Warn, "GET / → %d without Strict-Transport-Security", r.Status)
		return
	}
	maxAge := -1
	for _, part := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(k, "max-age") {
			fmt.Sscanf(strings.Trim(val, `"`), "%d", &maxAge)
		}
	}
	if maxAge < 15552000 {
		a.add(CatTLS, id, Warn, "Strict-Transport-Security: %s (max-age below 180 days)", clip(v, 120))
		return
	}
	a.add(CatTLS, id, Pass, "Strict-Transport-Security: %s", clip(v, 120))
}
