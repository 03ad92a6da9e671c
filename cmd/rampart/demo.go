package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rampart-proxy/rampart/internal/ciscodemo"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/demo"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/server"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8443", "public listener address")
	profile := fs.String("profile", "", "cisco-cc: a mock contact center behind the cisco-cc profile")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *profile == "cisco-cc" {
		return ciscoDemo(*listen, stdout, stderr)
	} else if *profile != "" {
		fmt.Fprintf(stderr, "rampart demo: unknown profile %q (cisco-cc is available)\n", *profile)
		return 2
	}
	upstream, stop, err := demo.Start()
	if err != nil {
		fmt.Fprintf(stderr, "rampart demo: %v\n", err)
		return 1
	}
	defer stop()
	ca, err := selfsigned.NewCA("rampart demo CA")
	if err != nil {
		fmt.Fprintf(stderr, "rampart demo: %v\n", err)
		return 1
	}
	certPEM, keyPEM, err := ca.Leaf("localhost", "127.0.0.1")
	if err != nil {
		fmt.Fprintf(stderr, "rampart demo: %v\n", err)
		return 1
	}
	cfg, err := config.ParseWithCert("demo.yaml", fmt.Appendf(nil, demo.Config, *listen, upstream), &config.CertPEM{Cert: certPEM, Key: keyPEM})
	if err != nil {
		fmt.Fprintf(stderr, "rampart demo: %v\n", err)
		return 1
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(stderr, "rampart demo: %v\n", err)
		return 1
	}
	u := "https://localhost:" + config.ListenPort(srv.Addrs()[0].String())
	fmt.Fprintf(stderr, `rampart demo: %s → sample app at %s (self-signed certificate; curl needs -k)

Allowed:
  curl -k %s/                                 # 200, page from the internal app, no Server banner
  curl -k %s/api/hello                        # 200, JSON; the app sees X-Forwarded-For and X-Request-ID
Refused:
  curl -k %s/admin/                           # 403: deny entry
  curl -k %s/nothing-here                     # 404: no route (deny by default)
  curl -k '%s/api/..;/admin/'                 # 400: Tomcat path-parameter traversal
  curl -k '%s/api/%%2e%%2e/admin/'            # 400: encoded dot segment
  curl -k -X DELETE %s/api/x                  # 405: method not listed
  curl -k -H 'Host: evil.example' %s/         # 421: unknown host
  curl -k --http1.0 %s/                       # 505: HTTP/1.1 only
  curl -k -X TRACE %s/                        # 405: never proxied
Logs: access log on stdout, security events on stderr. Ctrl-C stops.

`, u, upstream, u, u, u, u, u, u, u, u, u, u)
	return serveUntilSignal(srv, stdout, stderr)
}

func ciscoDemo(listen string, stdout, stderr io.Writer) int {
	d, err := ciscodemo.Start(context.Background(), ciscodemo.Options{Listen: listen})
	if err != nil {
		fmt.Fprintf(stderr, "rampart demo: %v\n", err)
		return 1
	}
	defer d.Mock.Close()
	port := config.ListenPort(d.Server.Addrs()[0].String())
	fmt.Fprintf(stderr, `rampart demo (cisco-cc): a mock contact center behind the cisco-cc profile
Config: %s (certificates, logs beside it)

The public names resolve to this host only in your client, for example:
  chromium --host-resolver-rules='MAP *.demo.test 127.0.0.1' --ignore-certificate-errors https://%s:%s/desktop/
  curl -k --resolve %s:%s:127.0.0.1 https://%s:%s/desktop/            # 412: curl is not a supported browser
  curl -k -A 'Mozilla/5.0 Chrome/130' --resolve %s:%s:127.0.0.1 -u agent1:'Secret#1' https://%s:%s/finesse/api/User/agent1
  curl -k -A 'Mozilla/5.0 Chrome/130' --resolve %s:%s:127.0.0.1 https://%s:%s/cfadmin/   # 403
Agents: agent1 / Secret#1, agent2 / Secret#2. Five wrong passwords in 30 s ban the client for 30 minutes (418).
Ctrl-C stops.

`, d.Config, ciscodemo.Finesse, port,
		ciscodemo.Finesse, port, ciscodemo.Finesse, port,
		ciscodemo.Finesse, port, ciscodemo.Finesse, port,
		ciscodemo.Finesse, port, ciscodemo.Finesse, port)
	return serveUntilSignal(d.Server, stdout, stderr)
}
