package main

import (
	"io"

	"github.com/rampart-proxy/rampart/internal/adminclient"
	"github.com/rampart-proxy/rampart/internal/cache"
)

// cmdCache shows the edge caches' figures and purges them through the
// admin listener.
func cmdCache(args []string, stdout, stderr io.Writer) int {
	admin, args := adminclient.SplitFlag(args)
	return cache.RunCLI(args, admin, stdout, stderr)
}
