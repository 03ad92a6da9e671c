package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/deploy"
)

const deployUsage = `Usage:
  rampart deploy systemd  -c FILE [flags]          print a hardened systemd unit
  rampart deploy nftables -c FILE [flags]          print the host's nftables ruleset
  rampart deploy selinux  -c FILE -o DIR [flags]   write the SELinux policy module

Every artefact is derived from the config: its listener, admin, upstream and
state-store ports, certificate and log directories. Regenerate them when it
changes. See internal/deploy/README.md and deploy/README.md.

Flags:
`

// cmdDeploy prints (systemd, nftables) or writes (selinux) the host
// artefacts for a config.
func cmdDeploy(args []string, stdout, stderr io.Writer) int {
	kinds := []string{"systemd", "nftables", "selinux"}
	if len(args) == 0 || !slices.Contains(kinds, args[0]) {
		fs := deployFlags(stderr, &deployOpts{})
		fmt.Fprint(stderr, deployUsage)
		fs.PrintDefaults()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return 0
		}
		return 2
	}
	kind := args[0]
	var o deployOpts
	fs := deployFlags(stderr, &o)
	fs.Usage = func() { fmt.Fprint(stderr, deployUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart deploy %s: unexpected argument %q\n", kind, fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(o.file)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	opts := deploy.Options{
		ConfigPath: o.configPath,
		Binary:     o.binary,
		User:       o.user,
		Group:      o.group,
		MemoryMax:  o.memoryMax,
	}
	if opts.LimitNOFILE, err = atoiFlag("nofile", o.nofile); err != nil {
		fmt.Fprintf(stderr, "rampart deploy: %v\n", err)
		return 2
	}
	if opts.Clients, err = deploy.ParsePrefixes(o.clients); err != nil {
		fmt.Fprintf(stderr, "rampart deploy: --clients: %v\n", err)
		return 2
	}
	if opts.AllowIn, err = parseOpenings("--allow-in", o.allowIn); err != nil {
		fmt.Fprintf(stderr, "rampart deploy: %v\n", err)
		return 2
	}
	if opts.AllowOut, err = parseOpenings("--allow-out", o.allowOut); err != nil {
		fmt.Fprintf(stderr, "rampart deploy: %v\n", err)
		return 2
	}
	switch kind {
	case "systemd", "nftables":
		gen := deploy.Systemd
		if kind == "nftables" {
			gen = deploy.Nftables
		}
		out, err := gen(cfg, opts)
		if err != nil {
			fmt.Fprintf(stderr, "rampart deploy %s: %s: %v\n", kind, o.file, err)
			return 1
		}
		fmt.Fprint(stdout, out)
		return 0
	}
	if o.outDir == "" {
		fmt.Fprintln(stderr, "rampart deploy selinux: -o DIR is required (the module is several files)")
		return 2
	}
	files, err := deploy.SELinux(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "rampart deploy selinux: %s: %v\n", o.file, err)
		return 1
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		fmt.Fprintf(stderr, "rampart deploy selinux: %v\n", err)
		return 1
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		path := filepath.Join(o.outDir, name)
		if err := os.WriteFile(path, []byte(files[name]), mode); err != nil {
			fmt.Fprintf(stderr, "rampart deploy selinux: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, path)
	}
	return 0
}

type deployOpts struct {
	file, outDir, configPath, binary, user, group, memoryMax, nofile, clients string
	allowIn, allowOut                                                         listFlag
}

// listFlag is a flag that may be repeated.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func deployFlags(stderr io.Writer, o *deployOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.file, "c", "rampart.yaml", "config file")
	fs.StringVar(&o.outDir, "o", "", "directory to write the SELinux module to (selinux)")
	fs.StringVar(&o.configPath, "config-path", "", "where the config lives on the target host (default: the absolute path of -c)")
	fs.StringVar(&o.binary, "bin", "/usr/local/bin/rampart", "installed program")
	fs.StringVar(&o.user, "user", "rampart", "user the service runs as (systemd)")
	fs.StringVar(&o.group, "group", "", "group the service runs as (default: the user's name)")
	fs.StringVar(&o.memoryMax, "memory-max", "1G", "MemoryMax= of the unit (systemd)")
	fs.StringVar(&o.nofile, "nofile", "", "LimitNOFILE= of the unit (default: 2 x connections_total + 4096)")
	fs.StringVar(&o.clients, "clients", "", "networks clients come from, comma-separated (default: anywhere)")
	fs.Var(&o.allowIn, "allow-in", "extra inbound opening proto/port@network, e.g. tcp/22@10.0.9.0/24 (nftables; repeatable)")
	fs.Var(&o.allowOut, "allow-out", "extra outbound opening proto/port@network, e.g. udp/123@10.0.0.1 (nftables; repeatable)")
	return fs
}

func atoiFlag(name, s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("--%s: %q is not a positive number", name, s)
	}
	return n, nil
}

// parseOpenings reads the values of a repeated --allow-in or --allow-out.
func parseOpenings(name string, values []string) ([]deploy.Opening, error) {
	var out []deploy.Opening
	for _, s := range values {
		op, err := deploy.ParseOpening(s)
		if err != nil {
			return nil, fmt.Errorf("%s %v", name, err)
		}
		out = append(out, op)
	}
	return out, nil
}
