package lint

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
)

// head is the start of every test config: a listener certificate and
// nothing loosened.
const head = "tls: {cert: site.pem, key: site-key.pem}\n"

// site is a site with one harmless route; tests append to it.
const site = `sites:
  - host: app.test
    upstream: {targets: ["http://127.0.0.1:9001"]}
`

// parse loads yaml as if it were dir/rampart.yaml.
func parse(t *testing.T, dir, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(dir, "rampart.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config does not load: %v\n%s", err, yaml)
	}
	return cfg
}

// run lints yaml in a fresh directory (no certificate or key files, so the
// file rules are silent unless setup writes them).
func run(t *testing.T, yaml string, now time.Time, setup func(dir string)) []Finding {
	t.Helper()
	dir := t.TempDir()
	if setup != nil {
		setup(dir)
	}
	yaml = strings.ReplaceAll(yaml, "{{DIR}}", dir)
	return Run(parse(t, dir, yaml), Options{Now: now})
}

// byRule returns the findings of rule id.
func byRule(fs []Finding, id string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Rule == id {
			out = append(out, f)
		}
	}
	return out
}

func keys(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Key)
	}
	return out
}

// writeSelfSigned writes the listener certificate and key made by
// selfsigned (valid a day: a short-lived certificate) for hosts.
func writeSelfSigned(t *testing.T, dir string, hosts ...string) {
	t.Helper()
	ca, err := selfsigned.NewCA("lint test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Leaf(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "site.pem"), cert, 0o644)
	writeFile(t, filepath.Join(dir, "site-key.pem"), key, 0o600)
}

// writeCert writes a self-signed certificate valid from notBefore to
// notAfter for hosts to dir/name, for lifetimes selfsigned does not make.
func writeCert(t *testing.T, dir, name string, notBefore, notAfter time.Time, hosts ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		DNSNames:     hosts,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}
