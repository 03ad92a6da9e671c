package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-proxy/rampart/internal/config"
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
	if os.Geteuid() == 0 && !*allowRoot {
		fmt.Fprintln(stderr, "rampart: refusing to serve as root: run as an unprivileged user (grant CAP_NET_BIND_SERVICE for ports below 1024), or pass --allow-root")
		return 1
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintf(stderr, "rampart: %v\n", err)
		return 1
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(stderr, "rampart: %v\n", err)
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
