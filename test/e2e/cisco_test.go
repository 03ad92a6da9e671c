package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-proxy/rampart/internal/ciscodemo"
	"github.com/rampart-proxy/rampart/internal/config"
)

const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"

// ciscoEnv runs the cisco-cc profile in front of the mock contact center.
func ciscoEnv(t *testing.T) (*ciscodemo.Demo, func(host string) *http.Client, string) {
	t.Helper()
	d, err := ciscodemo.Start(context.Background(), ciscodemo.Options{Listen: "127.0.0.1:0", Dir: t.TempDir(), Agents: 10})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.Server.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	addr := d.Server.Addrs()[0].String()
	lastDemo = d
	pool := x509.NewCertPool()
	pool.AddCert(d.CA)
	client := func(host string) *http.Client {
		return &http.Client{
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				},
			},
			Timeout: 5 * time.Second,
		}
	}
	return d, client, config.ListenPort(addr)
}

var lastDemo *ciscodemo.Demo

func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("User-Agent", chromeUA)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		if lastDemo != nil {
			time.Sleep(400 * time.Millisecond)
			sec, _ := os.ReadFile(filepath.Join(lastDemo.Dir, "security.log"))
			t.Logf("security log:\n%s", sec)
		}
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // keep the connection: the profile limits handshakes to 20/s
	resp.Body.Close()
	return resp
}

func TestCiscoProfile_GeneratedConfigHasNoWarnings(t *testing.T) {
	d, _, _ := ciscoEnv(t)
	cfg, err := config.Load(d.Config)
	if err != nil {
		t.Fatal(err)
	}
	if ws := cfg.Warnings(); len(ws) != 0 {
		t.Fatalf("warnings: %v", ws)
	}
	// The multi-port layout, as `rampart init` writes it, passes `check`
	// with no warnings once its certificates exist.
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "certs"), 0o700))
	for _, f := range []string{"site.pem", "site-key.pem", "internal-ca.pem", "proxy-client.pem", "proxy-client-key.pem"} {
		b, err := os.ReadFile(filepath.Join(d.Dir, "certs", f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "certs", f), b, 0o600))
	}
	out := filepath.Join(dir, "rampart.yaml")
	cmd := exec.Command(binary(t), "init", "--profile", "cisco-cc",
		"--finesse", "finesse.example.com=https://10.0.0.5:8445", "--ids", "ids.example.com=https://10.0.0.6:8553",
		"--cuic", "cuic.example.com=https://10.0.0.7:8444", "--livedata", "livedata.example.com=https://10.0.0.8:12005",
		"--agents", "500", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, b)
	}
	b, err := exec.Command(binary(t), "check", "-c", out).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "0 warning(s)") {
		t.Fatalf("check: %v\n%s", err, b)
	}
	text, _ := os.ReadFile(out)
	for _, want := range []string{"\"0.0.0.0:8445\"", "max_websockets: 600", "ban_status: 418", "deny_status: 421", `versions: ["1.2"]`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("generated config lacks %s", want)
		}
	}
}

func TestCiscoProfile_EdgeRules(t *testing.T) {
	d, client, port := ciscoEnv(t)
	fin := client(ciscodemo.Finesse)
	base := "https://" + ciscodemo.Finesse + ":" + port
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	hits := func() int64 { return d.Mock.Finesse.Hits.Load() }
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
	}{
		{"DesktopIsPublic", "GET", "/desktop/", nil, 200},
		{"AdminPageRefused", "GET", "/cfadmin/", nil, 403},
		{"UnlistedPathIs421", "GET", "/finesse/", nil, 421},
		{"NonBrowserUserAgent", "GET", "/desktop/", map[string]string{"User-Agent": "sqlmap/1.7"}, 412},
		{"ForeignReferer", "GET", "/desktop/", map[string]string{"Referer": "https://evil.example/x"}, 417},
		{"OwnReferer", "GET", "/desktop/", map[string]string{"Referer": "https://" + ciscodemo.IdS + "/ids/"}, 200},
		{"APIWithoutCredentials", "GET", "/finesse/api/User/agent1", nil, 401},
		{"APIWithCredentials", "GET", "/finesse/api/User/agent1", map[string]string{"Authorization": basic("agent1", "Secret#1")}, 200},
		{"RESTPutPassesWAFAndRouter", "PUT", "/finesse/api/User/agent1", map[string]string{"Authorization": basic("agent1", "Secret#1")}, 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := do(t, fin, tc.method, base+tc.path, tc.hdr); resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	// IdS: admin refused, and only GET/POST/OPTIONS.
	ids := client(ciscodemo.IdS)
	idsBase := "https://" + ciscodemo.IdS + ":" + port
	if r := do(t, ids, "GET", idsBase+"/idsadmin/", nil); r.StatusCode != 403 {
		t.Fatalf("idsadmin: %d", r.StatusCode)
	}
	if r := do(t, ids, "PUT", idsBase+"/ids/v1/keys", nil); r.StatusCode != 405 {
		t.Fatalf("PUT on IdS: %d", r.StatusCode)
	}
	if r := do(t, ids, "GET", idsBase+"/ids/v1/keys", nil); r.StatusCode != 200 {
		t.Fatalf("IdS keys: %d", r.StatusCode)
	}

	// Anonymous requests are challenged, never counted as guesses ...
	for i := 0; i < 8; i++ {
		if r := do(t, fin, "GET", base+"/finesse/api/User/agent2", nil); r.StatusCode != 401 {
			t.Fatalf("anonymous %d: %d", i, r.StatusCode)
		}
	}
	// ... and never reach the internal server.
	before := hits()
	do(t, fin, "GET", base+"/finesse/api/User/agent2", nil)
	if hits() != before {
		t.Fatal("an anonymous request reached Finesse")
	}
	// Five wrong passwords: banned with 418, even with the right one after.
	for i := 0; i < 5; i++ {
		if r := do(t, fin, "GET", base+"/finesse/api/User/agent2", map[string]string{"Authorization": basic("agent2", "guess")}); r.StatusCode != 401 {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	if r := do(t, fin, "GET", base+"/finesse/api/User/agent2", map[string]string{"Authorization": basic("agent2", "Secret#2")}); r.StatusCode != 418 {
		t.Fatalf("after five failures: %d, want 418", r.StatusCode)
	}
}

func TestCiscoProfile_NotificationWebSocketNeedsCredentials(t *testing.T) {
	_, client, port := ciscoEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "wss://" + ciscodemo.Finesse + ":" + port + "/ws"
	hdr := http.Header{"User-Agent": {chromeUA}}
	if _, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client(ciscodemo.Finesse), HTTPHeader: hdr, Subprotocols: []string{"xmpp"}}); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("anonymous upgrade: %v %v", err, resp)
	}
	cred := "base64url.basic.authorization." + base64.RawURLEncoding.EncodeToString([]byte("agent1:Secret#1"))
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client(ciscodemo.Finesse), HTTPHeader: hdr, Subprotocols: []string{"xmpp", cred}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("<auth user='agent1'/>")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(msg), "<state>READY</state>") {
		t.Fatalf("notification: %v %q", err, msg)
	}
}
