package lint

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
)

const (
	// expiryWindow: a certificate with less left than this is reported.
	expiryWindow = 30 * 24 * time.Hour
	// shortLived: a certificate whose whole validity is shorter than this
	// is taken for a test, demo or ACME-staging certificate, renewed by
	// machinery, and its expiry and name findings are info.
	shortLived = 7 * 24 * time.Hour
)

// certFile is a certificate named in the config.
type certFile struct {
	path  []any  // key of the cert, e.g. tls.cert
	file  string // path on disk, "" when held in memory
	mem   []byte // PEM held in memory (rampart demo)
	sites []int  // sites it is served for (listener and site certificates)
	chain []*x509.Certificate
}

// certificates reports expired and expiring certificates and site names
// a certificate does not cover.
func (l *linter) certificates() {
	c := l.cfg
	var files []*certFile
	listener := &certFile{path: p("tls", "cert"), file: c.Path(c.TLS.Cert)}
	if c.TLS.InMemory != nil {
		listener.file, listener.mem = "", c.TLS.InMemory.Cert
	}
	files = append(files, listener)
	seen := map[string]bool{}
	for i, s := range c.Sites {
		if s.TLS != nil && s.TLS.Cert != "" {
			files = append(files, &certFile{path: p("sites", i, "tls", "cert"), file: c.Path(s.TLS.Cert), sites: []int{i}})
		} else {
			listener.sites = append(listener.sites, i)
		}
		if s.Upstream.TLS.Cert != "" && !seen[c.Path(s.Upstream.TLS.Cert)] {
			// One client certificate often serves several sites: judge it once.
			seen[c.Path(s.Upstream.TLS.Cert)] = true
			files = append(files, &certFile{path: p("sites", i, "upstream", "tls", "cert"), file: c.Path(s.Upstream.TLS.Cert)})
		}
	}
	for _, f := range files {
		f.chain = readChain(f.file, f.mem)
		if len(f.chain) == 0 {
			continue // unreadable: reported by the build
		}
		l.expiry(f)
		l.names(f)
	}
}

// readChain returns the certificates of a PEM file, leaf first.
func readChain(file string, mem []byte) []*x509.Certificate {
	data := mem
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil
		}
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, cert)
		}
	}
}

func (f *certFile) shortLived() bool {
	leaf := f.chain[0]
	return leaf.NotAfter.Sub(leaf.NotBefore) < shortLived
}

func (l *linter) expiry(f *certFile) {
	leaf := f.chain[0]
	soonest := leaf
	for _, c := range f.chain[1:] {
		if c.NotAfter.Before(soonest.NotAfter) {
			soonest = c
		}
	}
	what := "the certificate"
	if soonest != leaf {
		what = fmt.Sprintf("%q in its chain", soonest.Subject.CommonName)
	}
	left := soonest.NotAfter.Sub(l.now)
	switch {
	case left <= 0:
		l.report(RuleCertExpired, f.path, "%s expired on %s: clients refuse the handshake", what, day(soonest.NotAfter))
	case l.now.Before(leaf.NotBefore):
		l.report(RuleCertNotYet, f.path, "the certificate is valid from %s only: clients refuse it until then (or this host's clock is wrong)", leaf.NotBefore.UTC().Format(time.RFC3339))
	case f.shortLived():
		l.add(RuleCertExpiring, Info, f.path, "make sure something renews it before then",
			fmt.Sprintf("%s expires in %s (%s); it is short-lived (valid %s in all), taken for a test or automatically renewed certificate",
				what, span(left), day(soonest.NotAfter), span(leaf.NotAfter.Sub(leaf.NotBefore))))
	case left < expiryWindow:
		l.report(RuleCertExpiring, f.path, "%s expires in %s (%s)", what, span(left), day(soonest.NotAfter))
	}
}

// names reports, per site, the host and aliases that the certificate it is
// served with does not name.
func (l *linter) names(f *certFile) {
	leaf := f.chain[0]
	for _, i := range f.sites {
		s := l.cfg.Sites[i]
		var missing []string
		for _, h := range append([]string{s.Host}, s.Aliases...) {
			if leaf.VerifyHostname(h) != nil {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			continue
		}
		msg := fmt.Sprintf("%s %s served with %s (%s), which does not name %s: browsers refuse the handshake",
			strings.Join(missing, ", "), plural(len(missing), "is", "are"), config.KeyString(f.path...), certNames(leaf), plural(len(missing), "it", "them"))
		if f.shortLived() {
			l.add(RuleCertName, Info, p("sites", i, "host"), ruleByID(RuleCertName).Fix, msg+"; the certificate is short-lived, taken for a test certificate")
			continue
		}
		l.report(RuleCertName, p("sites", i, "host"), "%s", msg)
	}
}

func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no DNS names"
	}
	if len(names) > 4 {
		names = append(names[:4], fmt.Sprintf("and %d more", len(names)-4))
	}
	return "names " + strings.Join(names, ", ")
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// span renders a duration in days, or hours below two days.
func span(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if d >= time.Hour {
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dm", int(d/time.Minute))
}
