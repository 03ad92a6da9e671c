// Command rampartprof is `rampart serve` with a CPU profile: the same
// config loading and server, in-process, with runtime/pprof running from
// start to SIGTERM. rampart itself exposes no profiler; the benchmark uses
// this wrapper when asked for profiles (bench/run -profile DIR). It does
// not drop privileges or apply the Landlock sandbox that `serve` applies;
// neither is on the request path.
//
//	rampartprof serve -c FILE [--allow-root] -cpuprofile OUT
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/server"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	file := fs.String("c", "rampart.yaml", "config file")
	_ = fs.Bool("allow-root", false, "accepted for compatibility with rampart serve")
	prof := fs.String("cpuprofile", "", "write a CPU profile here")
	_ = fs.Parse(args)

	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
		os.Exit(1)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
		os.Exit(1)
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
			os.Exit(1)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	for {
		select {
		case err := <-errc:
			if err != nil {
				fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
			}
			return
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				writeHeap(*prof + ".heap")
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			return
		}
	}
}

func writeHeap(path string) {
	if path == ".heap" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "rampartprof: %v\n", err)
	}
}
