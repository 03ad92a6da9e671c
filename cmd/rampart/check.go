package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/lint"
	"github.com/rampart-proxy/rampart/internal/pipeline"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/tlspolicy"
)

// cmdCheck loads the config, builds everything serve would build, and runs
// the linter (internal/lint) over it. It exits 1 when there is any error.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "rampart.yaml", "config file")
	asJSON := fs.Bool("json", false, "print the findings as one JSON document")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart check: unexpected argument %q; use -c FILE\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		if *asJSON {
			_ = lint.NewReport(*file, fileSHA256(*file), 0, lint.LoadFindings(err)).WriteJSON(stdout)
		} else {
			fmt.Fprintf(stderr, "%v\n", err)
		}
		return 1
	}
	findings := lint.Run(cfg, lint.Options{})
	for _, err := range build(cfg) {
		if !lint.Explained(findings, err) {
			findings = append(findings, lint.BuildFinding(cfg, err))
		}
	}
	rep := lint.NewReport(*file, cfg.SHA256, len(cfg.Sites), findings)
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rampart check: %v\n", err)
		return 1
	}
	if rep.Summary.Error > 0 {
		return 1
	}
	return 0
}

// build builds what a start would build (certificates, CA files, routes,
// upstream addresses), so that check fails whenever serve would.
func build(cfg *config.Config) []error {
	var errs []error
	if _, err := tlspolicy.Build(cfg); err != nil {
		errs = append(errs, err)
	}
	p, err := pipeline.Build(context.Background(), cfg, &pipeline.Shared{Store: state.NewMemory(state.MemoryOptions{})})
	if err != nil {
		errs = append(errs, err)
	} else {
		p.Close()
	}
	return errs
}

// fileSHA256 is the fingerprint of a file that did not load, or "" when it
// cannot be read.
func fileSHA256(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
