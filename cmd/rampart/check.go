package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/pipeline"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/tlspolicy"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "rampart.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	// Build everything a start would build (certificates, CA files,
	// routes, upstream addresses), so check fails exactly when serve would.
	if _, err := tlspolicy.Build(cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *file, err)
		return 1
	}
	p, err := pipeline.Build(context.Background(), cfg, &pipeline.Shared{Store: state.NewMemory(state.MemoryOptions{})})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *file, err)
		return 1
	}
	p.Close()
	ws := cfg.Warnings()
	for _, w := range ws {
		fmt.Fprintf(stdout, "%s:%d: warning: %s: %s\n", *file, w.Line, w.Key, w.Msg)
	}
	fmt.Fprintf(stdout, "%s: ok, %d site(s), %d warning(s), sha256 %s\n", *file, len(cfg.Sites), len(ws), cfg.SHA256)
	return 0
}
