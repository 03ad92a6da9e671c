package main

import (
	"io"
	"strings"

	"github.com/rampart-proxy/rampart/internal/bruteforce"
)

// cmdBans lists, adds and lifts bans through the admin listener.
func cmdBans(args []string, stdout, stderr io.Writer) int {
	admin := "http://127.0.0.1:9901"
	if len(args) >= 2 && args[0] == "--admin" {
		admin, args = args[1], args[2:]
	} else if len(args) >= 1 && strings.HasPrefix(args[0], "--admin=") {
		admin, args = strings.TrimPrefix(args[0], "--admin="), args[1:]
	}
	return bruteforce.RunCLI(args, admin, stdout, stderr)
}
