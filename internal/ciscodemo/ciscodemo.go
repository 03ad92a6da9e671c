// Package ciscodemo assembles `rampart demo --profile cisco-cc`: a mock
// contact center on loopback (TLS, client certificates required), the
// certificates a real deployment would have, and rampart configured by the
// cisco-cc profile in front of it, all on one port.
package ciscodemo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/mockcc"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/server"
	"github.com/rampart-proxy/rampart/profiles/ciscocc"
)

// Public names of the demo's components.
const (
	Finesse  = "finesse.demo.test"
	IdS      = "ids.demo.test"
	CUIC     = "cuic.demo.test"
	LiveData = "livedata.demo.test"
)

// Demo is a running contact center behind rampart.
type Demo struct {
	Dir    string // config, certificates and logs
	Config string // path of the generated config
	Mock   *mockcc.Components
	Server *server.Server
	CA     *x509.Certificate
}

// Options tune the demo.
type Options struct {
	Listen string // host:port of the single public listener
	Dir    string // working directory; a new temp dir when empty
	Agents int
	// Edit, if set, may change the generated config text before it loads
	// (tests lower limits with it).
	Edit func(string) string
}

// Start builds and starts everything.
func Start(ctx context.Context, o Options) (*Demo, error) {
	d := &Demo{Dir: o.Dir}
	if d.Dir == "" {
		dir, err := os.MkdirTemp("", "rampart-cisco-demo")
		if err != nil {
			return nil, err
		}
		d.Dir = dir
	}
	if o.Agents == 0 {
		o.Agents = 50
	}
	certs := filepath.Join(d.Dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, err
	}
	ca, err := selfsigned.NewCA("contact center demo CA")
	if err != nil {
		return nil, err
	}
	d.CA = ca.Cert
	write := func(name string, data []byte, mode os.FileMode) error {
		return os.WriteFile(filepath.Join(certs, name), data, mode)
	}
	site, siteKey, err := ca.Leaf(Finesse, IdS, CUIC, LiveData)
	if err != nil {
		return nil, err
	}
	upCert, upKey, err := ca.Leaf("127.0.0.1")
	if err != nil {
		return nil, err
	}
	client, clientKey, err := ca.Leaf("rampart-proxy")
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"site.pem", site, 0o644}, {"site-key.pem", siteKey, 0o600},
		{"internal-ca.pem", ca.CertPEM, 0o644},
		{"proxy-client.pem", client, 0o644}, {"proxy-client-key.pem", clientKey, 0o600},
	} {
		if err := write(f.name, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	// The internal servers accept only rampart's client certificate.
	upPair, err := tls.X509KeyPair(upCert, upKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	d.Mock, err = mockcc.Start(&tls.Config{Certificates: []tls.Certificate{upPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	host, port, err := splitListen(o.Listen)
	if err != nil {
		d.Mock.Close()
		return nil, err
	}
	if port == 0 {
		// The profile writes a fixed port; find a free one for it.
		if port, err = freePort(host); err != nil {
			d.Mock.Close()
			return nil, err
		}
	}
	var gen bytes.Buffer
	err = ciscocc.Generate(&gen, ciscocc.Options{
		Finesse:  ciscocc.Component{Host: Finesse, Upstream: d.Mock.Finesse.URL},
		IdS:      ciscocc.Component{Host: IdS, Upstream: d.Mock.IdS.URL},
		CUIC:     ciscocc.Component{Host: CUIC, Upstream: d.Mock.CUIC.URL},
		LiveData: ciscocc.Component{Host: LiveData, Upstream: d.Mock.LiveData.URL},
		Agents:   o.Agents, SinglePort: true, Listen: host, Port: port,
		Admin:     "127.0.0.1:0",
		AccessLog: filepath.Join(d.Dir, "access.log"), SecurityLog: filepath.Join(d.Dir, "security.log"),
	})
	if err != nil {
		d.Mock.Close()
		return nil, err
	}
	text := gen.String()
	if o.Edit != nil {
		text = o.Edit(text)
	}
	d.Config = filepath.Join(d.Dir, "rampart.yaml")
	if err := os.WriteFile(d.Config, []byte(text), 0o640); err != nil {
		d.Mock.Close()
		return nil, err
	}
	cfg, err := config.Load(d.Config)
	if err != nil {
		d.Mock.Close()
		return nil, err
	}
	d.Server, err = server.New(ctx, cfg)
	if err != nil {
		d.Mock.Close()
		return nil, err
	}
	d.Server.Load = func() (*config.Config, error) { return config.Load(d.Config) }
	return d, nil
}

// Close stops rampart and the mock servers.
func (d *Demo) Close(ctx context.Context) {
	_ = d.Server.Shutdown(ctx)
	d.Mock.Close()
}

func splitListen(addr string) (string, int, error) {
	if addr == "" {
		addr = "127.0.0.1:8443"
	}
	host, p, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		return "", 0, fmt.Errorf("listen %q: want host:port", addr)
	}
	return host, port, nil
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
