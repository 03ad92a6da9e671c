package audit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
)

// Usage is the help text of `rampart audit`.
const Usage = `Usage: rampart audit https://host[:port] [flags]

Black-box security audit of a running reverse proxy, probing from outside.
Exit status: 1 if any check fails, 0 otherwise, 2 on usage errors.

Flags:
  --host NAME             public name to send as SNI and Host (repeatable; the
                          others are used for the domain-fronting check)
  --ca FILE               PEM roots to verify the certificate with (default: system)
  --insecure              report certificate chain/name problems as warnings
  --expect-paths FILE     allowed paths, one per line (# comments; "/api/*" is a
                          prefix): each must be reachable, its neighbours refused
  --forbidden-paths FILE  paths that must never be served (default: /admin/,
                          /manager/html, /WEB-INF/web.xml, /idsadmin/, /cfadmin/,
                          /server-status)
  --burst N               send N quick requests to / and look for 429/503 (N <= 500)
  --json                  print the report as JSON
  --html FILE             also write a self-contained HTML report to FILE
  --timeout DURATION      per-probe timeout (default 5s)
`

// mainHandshakeRate is Options.HandshakeRate for Main; 0 is the default.
// Tests against in-process fakes raise it.
var mainHandshakeRate float64

type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error {
	*h = append(*h, v)
	return nil
}

// Main is `rampart audit ARGS`: it parses the flags (before or after the
// target), runs the audit and prints the report. It returns the exit
// status.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var hosts hostList
	fs.Var(&hosts, "host", "")
	ca := fs.String("ca", "", "")
	insecure := fs.Bool("insecure", false, "")
	expectFile := fs.String("expect-paths", "", "")
	forbidFile := fs.String("forbidden-paths", "", "")
	burst := fs.Int("burst", 0, "")
	asJSON := fs.Bool("json", false, "")
	htmlFile := fs.String("html", "", "")
	timeout := fs.Duration("timeout", DefaultTimeout, "")

	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "rampart audit: "+format+"\n\n%s", append(a, Usage)...)
		return 2
	}
	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, Usage)
				return 0
			}
			return usageErr("%v", err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	if len(positional) != 1 {
		return usageErr("want exactly one target URL, got %d", len(positional))
	}
	if *timeout <= 0 || *timeout > time.Minute {
		return usageErr("--timeout %v: want a duration up to 1m", *timeout)
	}
	opts := Options{
		Target:        positional[0],
		Hosts:         hosts,
		CAFile:        *ca,
		Insecure:      *insecure,
		Burst:         *burst,
		Timeout:       *timeout,
		HandshakeRate: mainHandshakeRate,
	}
	for _, f := range []struct {
		name string
		file string
		dst  *[]string
	}{{"--expect-paths", *expectFile, &opts.ExpectPaths}, {"--forbidden-paths", *forbidFile, &opts.ForbiddenPaths}} {
		if f.file == "" {
			continue
		}
		fh, err := os.Open(f.file)
		if err != nil {
			return usageErr("%s: %v", f.name, err)
		}
		list, err := ReadPathList(fh)
		_ = fh.Close()
		if err != nil {
			return usageErr("%s %s: %v", f.name, f.file, err)
		}
		if len(list) == 0 {
			return usageErr("%s %s: no paths in the file", f.name, f.file)
		}
		*f.dst = list
	}
	if err := opts.Validate(); err != nil {
		return usageErr("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, opts)
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return usageErr("%v", err)
		}
		fmt.Fprintf(stderr, "rampart audit: %v\n", err)
		return 1
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout, isTerminal(stdout))
	}
	if err != nil {
		fmt.Fprintf(stderr, "rampart audit: %v\n", err)
		return 1
	}
	if *htmlFile != "" {
		if err := writeHTMLFile(rep, *htmlFile); err != nil {
			fmt.Fprintf(stderr, "rampart audit: --html: %v\n", err)
			return 1
		}
	}
	if rep.Failed() {
		return 1
	}
	return 0
}

func writeHTMLFile(rep *Report, name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// isTerminal reports whether w is a character device (a terminal) and
// colour was not turned off with NO_COLOR.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
