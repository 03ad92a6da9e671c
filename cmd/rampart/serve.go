package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/sandbox"
	"github.com/rampart-proxy/rampart/internal/server"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "rampart.yaml", "config file")
	allowRoot := fs.Bool("allow-root", false, "run as root (not recommended)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintf(stderr, "rampart: %v\n", err)
		return 1
	}
	if os.Getenv("GOGC") == "" {
		// A proxy's heap is small and short-lived; collecting less often
		// trades a little memory for CPU on every request. GOGC overrides.
		// After a wave of WebSockets opens or closes, internal/wscap gives
		// the memory back at once (memory.go).
		debug.SetGCPercent(400)
	}
	if os.Geteuid() == 0 && cfg.User == "" && !*allowRoot {
		fmt.Fprintln(stderr, "rampart: refusing to serve as root: set user: in the config (rampart drops to it after binding), run as an unprivileged user with CAP_NET_BIND_SERVICE, or pass --allow-root")
		return 1
	}
	// Order matters and each step is irreversible: keys are read and
	// listeners bound (server.New), then privileges are dropped, then the
	// process sandboxes itself to what the config needs.
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(stderr, "rampart: %v\n", err)
		return 1
	}
	if cfg.User != "" {
		if err := sandbox.DropPrivileges(cfg.User, cfg.Group); err != nil {
			fmt.Fprintf(stderr, "rampart: %v\n", err)
			return 1
		}
	}
	if cfg.CacheDir != "" {
		// Made by the user rampart now runs as, before the sandbox fixes
		// what it may reach (the systemd unit's CacheDirectory= has usually
		// made it already).
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			fmt.Fprintf(stderr, "rampart: cache_dir: %v\n", err)
			return 1
		}
	}
	if err := srv.OpenCacheDir(); err != nil {
		fmt.Fprintf(stderr, "rampart: %v\n", err)
		return 1
	}
	if _, err := sandbox.Apply(cfg, sandbox.Options{Disabled: cfg.Sandbox == "off", CacheDir: cfg.CacheDir}); err != nil {
		fmt.Fprintf(stderr, "rampart: sandbox: %v (set sandbox: off to run without it)\n", err)
		return 1
	}
	srv.Load = func() (*config.Config, error) { return config.Load(*file) }
	return serveUntilSignal(srv, stdout, stderr)
}

// serveUntilSignal serves, reloads on SIGHUP and drains on SIGTERM/SIGINT.
func serveUntilSignal(srv *server.Server, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	for _, a := range srv.Addrs() {
		fmt.Fprintf(stdout, "{\"msg\":\"listening\",\"addr\":%q}\n", a.String())
	}
	if a := srv.AdminAddr(); a != nil {
		fmt.Fprintf(stdout, "{\"msg\":\"admin listening\",\"addr\":%q}\n", a.String())
	}
	for {
		select {
		case err := <-errc:
			if err != nil {
				fmt.Fprintf(stderr, "rampart: %v\n", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = srv.Reload(context.Background())
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), srv.Config().Limits.DrainTimeout.D())
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(stderr, "rampart: shutdown: %v\n", err)
			}
			return 0
		}
	}
}
