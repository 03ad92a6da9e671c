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
  --slow                  hold two connections with a request head sent a byte a
                          second and a POST body sent 10 bytes a second; the
                          server should close them (slowloris, slow POST)
  --slow-for DURATION     how long each --slow probe may hold (default 30s, 5s to 2m)
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

// cliArgs is a parsed command line.
type cliArgs struct {
	opts     Options
	asJSON   bool
	htmlFile string
}

// parseArgs parses the flags (before or after the target) and reads the
// path lists. Errors are *UsageError, or flag.ErrHelp for --help.
func parseArgs(args []string) (*cliArgs, error) {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var hosts hostList
	fs.Var(&hosts, "host", "")
	ca := fs.String("ca", "", "")
	insecure := fs.Bool("insecure", false, "")
	expectFile := fs.String("expect-paths", "", "")
	forbidFile := fs.String("forbidden-paths", "", "")
	burst := fs.Int("burst", 0, "")
	slow := fs.Bool("slow", false, "")
	slowFor := fs.Duration("slow-for", DefaultSlowFor, "")
	asJSON := fs.Bool("json", false, "")
	htmlFile := fs.String("html", "", "")
	timeout := fs.Duration("timeout", DefaultTimeout, "")

	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	if len(positional) != 1 {
		return nil, usagef("want exactly one target URL, got %d", len(positional))
	}
	if *timeout <= 0 || *timeout > time.Minute {
		return nil, usagef("--timeout %v: want a duration up to 1m", *timeout)
	}
	slowForSet := false
	fs.Visit(func(f *flag.Flag) { slowForSet = slowForSet || f.Name == "slow-for" })
	if slowForSet && !*slow {
		return nil, usagef("--slow-for bounds the probes of --slow: add --slow")
	}
	c := &cliArgs{asJSON: *asJSON, htmlFile: *htmlFile, opts: Options{
		Target:        positional[0],
		Hosts:         hosts,
		CAFile:        *ca,
		Insecure:      *insecure,
		Burst:         *burst,
		Slow:          *slow,
		SlowFor:       *slowFor,
		Timeout:       *timeout,
		HandshakeRate: mainHandshakeRate,
	}}
	for _, f := range []struct {
		name string
		file string
		dst  *[]string
	}{{"--expect-paths", *expectFile, &c.opts.ExpectPaths}, {"--forbidden-paths", *forbidFile, &c.opts.ForbiddenPaths}} {
		if f.file == "" {
			continue
		}
		fh, err := os.Open(f.file)
		if err != nil {
			return nil, usagef("%s: %v", f.name, err)
		}
		list, err := ReadPathList(fh)
		_ = fh.Close()
		if err != nil {
			return nil, usagef("%s %s: %v", f.name, f.file, err)
		}
		if len(list) == 0 {
			return nil, usagef("%s %s: no paths in the file", f.name, f.file)
		}
		*f.dst = list
	}
	if err := c.opts.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Main is `rampart audit ARGS`: it parses the flags (before or after the
// target), runs the audit and prints the report. It returns the exit
// status.
func Main(args []string, stdout, stderr io.Writer) int {
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "rampart audit: "+format+"\n\n%s", append(a, Usage)...)
		return 2
	}
	cl, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if err != nil {
		return usageErr("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, cl.opts)
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return usageErr("%v", err)
		}
		fmt.Fprintf(stderr, "rampart audit: %v\n", err)
		return 1
	}
	if cl.asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout, isTerminal(stdout))
	}
	if err != nil {
		fmt.Fprintf(stderr, "rampart audit: %v\n", err)
		return 1
	}
	if cl.htmlFile != "" {
		if err := writeHTMLFile(rep, cl.htmlFile); err != nil {
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
