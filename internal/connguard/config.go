package connguard

import (
	"errors"
	"fmt"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
)

// Defaults for the keys left unset (zero).
const (
	DefaultConnectionsPerClient = 64
	DefaultConnectionsTotal     = 20000
	DefaultMaxClients           = 100000
)

// DefaultHandshakesPerClient is 20 TLS handshakes per second per client.
var DefaultHandshakesPerClient = units.Rate{Count: 20, Per: time.Second}

// Config holds this package's keys of the top-level limits: block, which it
// shares with other stages (the config package embeds it inline).
//
//	limits:
//	  connections_per_client: 64
//	  connections_total: 20000
//	  handshakes_per_client: 20/s
//	  max_clients: 100000
type Config struct {
	// ConnectionsPerClient caps the concurrent connections of one client.
	ConnectionsPerClient int `yaml:"connections_per_client"`
	// ConnectionsTotal caps the concurrent connections of all clients.
	ConnectionsTotal int `yaml:"connections_total"`
	// HandshakesPerClient is the TLS handshake rate of one client; the
	// burst is its count.
	HandshakesPerClient units.Rate `yaml:"handshakes_per_client"`
	// MaxClients bounds each per-client table (open-connection counts and
	// handshake limiters), so that memory stays bounded whatever the
	// number of addresses an attacker controls.
	MaxClients int `yaml:"max_clients"`
}

// WithDefaults returns c with every unset key at its default.
func (c Config) WithDefaults() Config {
	if c.ConnectionsPerClient == 0 {
		c.ConnectionsPerClient = DefaultConnectionsPerClient
	}
	if c.ConnectionsTotal == 0 {
		c.ConnectionsTotal = DefaultConnectionsTotal
	}
	if c.HandshakesPerClient.IsZero() {
		c.HandshakesPerClient = DefaultHandshakesPerClient
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	return c
}

// Validate reports values that cannot work, each saying what to write.
func (c Config) Validate() error {
	var errs []error
	if c.ConnectionsPerClient < 0 {
		errs = append(errs, fmt.Errorf("limits.connections_per_client: %d is negative: write a positive number, e.g. 64", c.ConnectionsPerClient))
	}
	if c.ConnectionsTotal < 0 {
		errs = append(errs, fmt.Errorf("limits.connections_total: %d is negative: write a positive number, e.g. 20000", c.ConnectionsTotal))
	}
	if c.MaxClients < 0 {
		errs = append(errs, fmt.Errorf("limits.max_clients: %d is negative: write a positive number, e.g. 100000", c.MaxClients))
	}
	if r := c.HandshakesPerClient; !r.IsZero() && (r.Count < 0 || r.Per <= 0) {
		errs = append(errs, fmt.Errorf("limits.handshakes_per_client: %q is not a rate: write e.g. 20/s", r.String()))
	}
	d := c.WithDefaults()
	if c.ConnectionsPerClient > 0 && c.ConnectionsTotal >= 0 && d.ConnectionsPerClient > d.ConnectionsTotal {
		errs = append(errs, fmt.Errorf("limits.connections_per_client (%d) is larger than limits.connections_total (%d): lower it or raise the total",
			d.ConnectionsPerClient, d.ConnectionsTotal))
	}
	return errors.Join(errs...)
}
