package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func cmdVersion(w io.Writer) int {
	fmt.Fprintf(w, "rampart %s\n", version)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return 0
	}
	fmt.Fprintf(w, "go %s\n", bi.GoVersion)
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" || s.Key == "vcs.time" || s.Key == "vcs.modified" {
			fmt.Fprintf(w, "%s %s\n", s.Key, s.Value)
		}
	}
	for _, d := range bi.Deps {
		fmt.Fprintf(w, "dep %s %s\n", d.Path, d.Version)
	}
	return 0
}
