//go:build !linux

package wscap

import "errors"

// poller is Linux-only (epoll). Elsewhere tunnel legs never park: each
// direction keeps its goroutine for the life of the tunnel.
type poller struct{}

func getPoller() *poller { return nil }

func (p *poller) arm(*leg) error { return errors.ErrUnsupported }

func (p *poller) remove(*leg) {}
