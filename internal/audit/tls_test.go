package audit

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"
)

func okSite(*rawReq) rawResp { return rawResp{Status: 200, Body: "ok"} }

func TestTLS_ModernServer(t *testing.T) {
	f := startFake(t, nil, okSite)
	a := newTestAuditor(t, testOptions(f))
	a.runTLS(ctxT(t))
	want(t, checkMap(a), map[string]Status{
		"tls.version.1.0":    Pass,
		"tls.version.1.1":    Pass,
		"tls.version.1.2":    Pass,
		"tls.version.1.3":    Pass,
		"tls.cipher.cbc":     Pass,
		"tls.cipher.rsa-kex": Pass,
		"tls.cipher.3des":    Pass,
		"tls.cipher.rc4":     Pass,
		"tls.cert.chain":     Pass,
		"tls.cert.expiry":    Pass,
		"tls.cert.hostname":  Pass,
		"tls.ocsp":           Skip,
		"tls.session-ticket": Pass,
	})
}

func TestTLS_LegacyServer(t *testing.T) {
	ca := newTestCA(t)
	conf := &tls.Config{
		MinVersion: tls.VersionTLS10,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
		},
		Certificates: []tls.Certificate{ca.leaf(t, leafOpts{rsa: true})},
	}
	f := startFake(t, conf, okSite)
	f.ca = ca
	a := newTestAuditor(t, testOptions(f))
	a.runTLS(ctxT(t))
	got := checkMap(a)
	want(t, got, map[string]Status{
		"tls.version.1.0":    Fail,
		"tls.version.1.1":    Fail,
		"tls.version.1.2":    Pass,
		"tls.cipher.cbc":     Warn,
		"tls.cipher.rsa-kex": Fail,
		"tls.cipher.3des":    Fail,
		"tls.cipher.rc4":     Pass,
		"tls.session-ticket": Warn, // tickets are on by default in crypto/tls
		"tls.cert.chain":     Pass,
	})
	if ev := got["tls.cipher.3des"].Evidence; !strings.Contains(ev, "3DES") {
		t.Errorf("3des evidence %q", ev)
	}
}

func TestTLS_TLS13Only(t *testing.T) {
	f := startFake(t, &tls.Config{MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true}, okSite)
	a := newTestAuditor(t, testOptions(f))
	a.runTLS(ctxT(t))
	want(t, checkMap(a), map[string]Status{
		"tls.version.1.2": Pass,
		"tls.version.1.3": Pass,
		"tls.cipher.cbc":  Skip,
	})
}

func TestTLS_Certificates(t *testing.T) {
	ca := newTestCA(t)
	cases := []struct {
		name     string
		leaf     leafOpts
		staple   bool
		insecure bool
		noCA     bool
		want     map[string]Status
	}{
		{name: "expired", leaf: leafOpts{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)},
			want: map[string]Status{"tls.cert.expiry": Fail, "tls.cert.chain": Fail}},
		{name: "expiring", leaf: leafOpts{notAfter: time.Now().Add(10 * 24 * time.Hour)},
			want: map[string]Status{"tls.cert.expiry": Warn, "tls.cert.chain": Pass}},
		{name: "not yet valid", leaf: leafOpts{notBefore: time.Now().Add(time.Hour)},
			want: map[string]Status{"tls.cert.expiry": Fail}},
		{name: "wrong name", leaf: leafOpts{names: []string{"other.test"}},
			want: map[string]Status{"tls.cert.hostname": Fail, "tls.cert.chain": Pass}},
		{name: "wrong name insecure", leaf: leafOpts{names: []string{"other.test"}}, insecure: true,
			want: map[string]Status{"tls.cert.hostname": Warn}},
		{name: "untrusted", leaf: leafOpts{}, noCA: true,
			want: map[string]Status{"tls.cert.chain": Fail, "tls.cert.hostname": Pass}},
		{name: "ocsp not stapled", leaf: leafOpts{ocsp: "http://ocsp.example/"},
			want: map[string]Status{"tls.ocsp": Warn}},
		{name: "ocsp stapled", leaf: leafOpts{ocsp: "http://ocsp.example/"}, staple: true,
			want: map[string]Status{"tls.ocsp": Pass}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := ca.leaf(t, tc.leaf)
			if tc.staple {
				cert.OCSPStaple = []byte{0x30, 0x03, 0x0a, 0x01, 0x00}
			}
			f := startFake(t, &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true}, okSite)
			f.ca = ca
			o := testOptions(f)
			o.Insecure = tc.insecure
			if tc.noCA {
				o.CAFile = ""
			}
			a := newTestAuditor(t, o)
			a.runTLS(ctxT(t))
			want(t, checkMap(a), tc.want)
		})
	}
}

func TestTLS_HSTS(t *testing.T) {
	a := newTestAuditor(t, Options{Target: "https://app.test"})
	for hdr, st := range map[string]Status{
		"":                                    Warn,
		"max-age=300":                         Warn,
		"max-age=31536000; includeSubDomains": Pass,
		`max-age="63072000"`:                  Pass,
	} {
		a.checks = nil
		a.root = &response{Status: 200, Header: map[string][]string{}}
		if hdr != "" {
			a.root.Header.Set("Strict-Transport-Security", hdr)
		}
		a.hsts()
		if got := checkMap(a)["tls.hsts"]; got.Status != st {
			t.Errorf("HSTS %q: %s (%s), want %s", hdr, got.Status, got.Evidence, st)
		}
	}
}
