// Package tlspolicy builds the TLS configuration of the public listeners
// (pipeline stage 2): TLS 1.2 and 1.3 only, ECDHE with AEAD suites only,
// ALPN http/1.1 only (no HTTP/2, so no h2-specific attack surface), session
// tickets off unless asked for, optional client certificates, and a
// certificate per site chosen by SNI.
package tlspolicy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
)

// DefaultCiphers are the TLS 1.2 suites offered when the config names none:
// forward-secret key exchange and authenticated encryption only.
var DefaultCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Build reads the certificates named in cfg and returns the server config.
// Errors name the file and the config key, so a reload can report them and
// keep the running config.
func Build(cfg *config.Config) (*tls.Config, error) {
	t := cfg.TLS
	def, err := loadPair(cfg, t.InMemory, t.Cert, t.Key, "tls")
	if err != nil {
		return nil, err
	}
	bySNI := map[string]*tls.Certificate{}
	for i, s := range cfg.Sites {
		cert := def
		if s.TLS != nil {
			if cert, err = loadPair(cfg, nil, s.TLS.Cert, s.TLS.Key, fmt.Sprintf("sites[%d].tls", i)); err != nil {
				return nil, err
			}
		}
		for _, h := range append([]string{s.Host}, s.Aliases...) {
			bySNI[h] = cert
		}
	}
	tc := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS12,
		NextProtos:             []string{"http/1.1"},
		SessionTicketsDisabled: !t.SessionTickets,
		CipherSuites:           DefaultCiphers,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, ok := bySNI[strings.ToLower(hello.ServerName)]; ok {
				return c, nil
			}
			// Unknown or missing SNI still completes the handshake with the
			// default certificate; the host gate then answers 421, which
			// tells a misconfigured client more than an alert would.
			return def, nil
		},
	}
	for _, v := range t.Versions {
		n := config.TLSVersions[v]
		tc.MinVersion = min(tc.MinVersion, n)
		tc.MaxVersion = max(tc.MaxVersion, n)
	}
	if len(t.Ciphers) > 0 {
		tc.CipherSuites = nil
		for _, name := range t.Ciphers {
			tc.CipherSuites = append(tc.CipherSuites, config.CipherSuites[name])
		}
	}
	switch t.ClientAuth {
	case "request":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if t.ClientCA != "" {
		pool, err := LoadPool(cfg.Path(t.ClientCA))
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca: %w", err)
		}
		tc.ClientCAs = pool
	}
	// A client whose ALPN list lacks http/1.1 (an h2-only client, curl
	// --http1.0) would fail the handshake with no_application_protocol.
	// Negotiate no protocol instead: the protocol guard then answers
	// HTTP/1.0 with 505 and drops an HTTP/2 preface, which tells the client
	// more and is logged as what it is.
	noALPN := tc.Clone()
	noALPN.NextProtos = nil
	tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(hello.SupportedProtos) > 0 && !slices.Contains(hello.SupportedProtos, "http/1.1") {
			return noALPN, nil
		}
		return nil, nil
	}
	return tc, nil
}

func loadPair(cfg *config.Config, mem *config.CertPEM, certFile, keyFile, key string) (*tls.Certificate, error) {
	var c tls.Certificate
	var err error
	if mem != nil {
		c, err = tls.X509KeyPair(mem.Cert, mem.Key)
	} else {
		if err := CheckKeyFile(cfg.Path(keyFile)); err != nil {
			return nil, fmt.Errorf("%s.key: %w", key, err)
		}
		c, err = tls.LoadX509KeyPair(cfg.Path(certFile), cfg.Path(keyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: cannot load certificate %s and key %s: %w", key, certFile, keyFile, err)
	}
	return &c, nil
}

// CheckKeyFile refuses a private key that any user on the host can read.
func CheckKeyFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o004 != 0 {
		return fmt.Errorf("private key %s is world-readable (mode %o); run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return nil
}

// LoadPool reads a PEM bundle of CA certificates.
func LoadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
