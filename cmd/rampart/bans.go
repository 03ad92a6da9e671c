package main

import (
	"io"

	"github.com/rampart-proxy/rampart/internal/adminclient"
	"github.com/rampart-proxy/rampart/internal/bruteforce"
)

// cmdBans lists, adds and lifts bans through the admin listener.
func cmdBans(args []string, stdout, stderr io.Writer) int {
	admin, args := adminclient.SplitFlag(args)
	return bruteforce.RunCLI(args, admin, stdout, stderr)
}
