//go:build tools

// Package deps pins the modules the stages are built on while they are
// being wired in.
package deps

import (
	_ "github.com/coder/websocket"
	_ "github.com/corazawaf/coraza-coreruleset/v4"
	_ "github.com/corazawaf/coraza/v3"
	_ "github.com/pires/go-proxyproto"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/redis/go-redis/v9"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/time/rate"
)
