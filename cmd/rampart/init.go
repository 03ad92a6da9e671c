package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rampart-proxy/rampart/profiles/ciscocc"
)

func cmdInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profileName := fs.String("profile", "", "profile to generate: cisco-cc")
	finesse := fs.String("finesse", "", "PUBLIC-HOST=https://INTERNAL:PORT of Finesse")
	ids := fs.String("ids", "", "PUBLIC-HOST=https://INTERNAL:PORT of IdS")
	cuic := fs.String("cuic", "", "PUBLIC-HOST=https://INTERNAL:PORT of CUIC")
	livedata := fs.String("livedata", "", "PUBLIC-HOST=https://INTERNAL:PORT of LiveData")
	agents := fs.Int("agents", 0, "agents working at once (sizes WebSocket caps)")
	single := fs.Bool("single-port", false, "serve every component on 443 (one name each)")
	certDir := fs.String("cert-dir", "certs", "directory of the certificates, relative to the config file")
	out := fs.String("o", "", "write to FILE instead of standard output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *profileName != "cisco-cc" {
		fmt.Fprintln(stderr, "rampart init: --profile cisco-cc is the profile available")
		return 2
	}
	o := ciscocc.Options{Agents: *agents, SinglePort: *single, CertDir: *certDir}
	for _, c := range []struct {
		name string
		v    string
		dst  *ciscocc.Component
	}{{"finesse", *finesse, &o.Finesse}, {"ids", *ids, &o.IdS}, {"cuic", *cuic, &o.CUIC}, {"livedata", *livedata, &o.LiveData}} {
		comp, err := ciscocc.ParseComponent(c.name, c.v)
		if err != nil {
			fmt.Fprintf(stderr, "rampart init: %v\n", err)
			return 2
		}
		*c.dst = comp
	}
	var buf bytes.Buffer
	if err := ciscocc.Generate(&buf, o); err != nil {
		fmt.Fprintf(stderr, "rampart init: %v\n", err)
		return 2
	}
	if *out == "" {
		_, _ = stdout.Write(buf.Bytes())
		return 0
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o640); err != nil {
		fmt.Fprintf(stderr, "rampart init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "rampart init: wrote %s; put the certificates it names in place, then run: rampart check -c %s\n", *out, *out)
	return 0
}
