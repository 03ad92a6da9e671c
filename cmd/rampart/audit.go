package main

import (
	"io"

	"github.com/rampart-proxy/rampart/internal/audit"
)

// cmdAudit is `rampart audit https://host[:port] [flags]`: a black-box
// security audit of any running reverse proxy (see internal/audit).
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	return audit.Main(args, stdout, stderr)
}
