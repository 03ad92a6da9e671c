// Command rampart is a deny-by-default TLS reverse proxy for the DMZ.
//
//	rampart serve -c rampart.yaml    run the proxy
//	rampart check -c rampart.yaml    validate a config and list weakened defaults
//	rampart demo                     run a sample app behind rampart on https://localhost:8443
//	rampart version                  print version information
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/rampart-proxy/rampart/internal/adminclient"
	"github.com/rampart-proxy/rampart/internal/bruteforce"
	"github.com/rampart-proxy/rampart/internal/cache"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `rampart: a deny-by-default TLS reverse proxy for the DMZ

Usage:
  rampart serve -c FILE [--allow-root]   run the proxy (SIGHUP reloads, SIGTERM drains)
  rampart check -c FILE [--json]         validate and lint FILE: errors, weakened defaults, fix hints
  rampart demo [--listen ADDR]           run a sample app behind rampart (default https://localhost:8443)
  rampart init --profile cisco-cc ...    write a complete config for a contact center (see README)
  rampart audit https://HOST[:PORT] [flags] black-box security audit of a running proxy (rampart audit -h)
  rampart deploy systemd|nftables|selinux -c FILE [-o DIR]
                                         artefacts for the host, generated from the config
  rampart bans [--admin URL] list|add IP DURATION [REASON]|remove IP
                                         manage bans through the admin listener
  rampart cache [--admin URL] stats [SITE]|purge SITE [--prefix PATH|--key URL]
                                         show and purge the edge cache through the admin listener
  rampart version                        print version, commit and dependency versions
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "init":
		return cmdInit(args[1:], stdout, stderr)
	case "bans":
		return adminCmd(bruteforce.RunCLI, args[1:], stdout, stderr)
	case "cache":
		return adminCmd(cache.RunCLI, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "deploy":
		return cmdDeploy(args[1:], stdout, stderr)
	case "version", "--version":
		return cmdVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "rampart: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// adminCmd runs a command of the admin API (rampart bans, rampart cache)
// after taking a leading --admin URL off its arguments.
func adminCmd(run func(args []string, adminURL string, stdout, stderr io.Writer) int, args []string, stdout, stderr io.Writer) int {
	admin, args := adminclient.SplitFlag(args)
	return run(args, admin, stdout, stderr)
}
