package audit

import (
	"context"
	"net"
	"slices"
	"strings"
)

// hostPort is name as a Host header value for the target's port.
func (a *auditor) hostPort(name string) string {
	_, port, _ := net.SplitHostPort(a.t.addr)
	if port == "443" {
		return name
	}
	return name + ":" + port
}

func (a *auditor) runHost(ctx context.Context) {
	root := a.root
	switch {
	case root == nil || root.Skipped:
		a.skipBudget(CatHost, "host.baseline")
	case !root.answered():
		a.add(CatHost, "host.baseline", Warn, "GET / with Host %s: %s; checks that compare with the real site say less", a.t.hostHdr, root)
	case root.Status >= 400:
		a.add(CatHost, "host.baseline", Warn, "GET / with Host %s → %d: the site's root page is refused, so checks that compare with it say less (is --host the public name?)", a.t.hostHdr, root.Status)
	default:
		a.add(CatHost, "host.baseline", Pass, "GET / with Host %s → %s", a.t.hostHdr, root.long())
	}

	// An unknown name, consistently in SNI and Host.
	name := "unknown-" + randToken() + ".invalid"
	r := a.once(ctx, name, "GET", a.reqHost("GET", "/", a.hostPort(name)))
	switch {
	case r.Skipped:
		a.skipBudget(CatHost, "host.unknown")
	case r.is2xx() && similar(r, root):
		a.add(CatHost, "host.unknown", Fail, "SNI and Host %s → %s, the same page as the real site: any name is served", name, r.long())
	case r.is2xx():
		a.add(CatHost, "host.unknown", Warn, "SNI and Host %s → %s: a default site answers unknown names (different from the real site's page)", name, r.long())
	case r.is3xx():
		a.add(CatHost, "host.unknown", Warn, "SNI and Host %s → %s", name, r)
	default:
		a.add(CatHost, "host.unknown", Pass, "SNI and Host %s → %s", name, r)
	}

	a.fronting(ctx)

	// Absolute form naming another host: an open proxy fetches it, a
	// confused one routes by one name and serves another.
	r = a.do(ctx, "GET", a.req("GET", "http://evil.example/"))
	switch {
	case r.Skipped:
		a.skipBudget(CatHost, "host.absolute-uri")
	case r.is2xx():
		a.add(CatHost, "host.absolute-uri", Fail, "GET http://evil.example/ with Host %s → %s: request for another host served", a.t.hostHdr, r.long())
	case r.is3xx():
		a.add(CatHost, "host.absolute-uri", Warn, "GET http://evil.example/ with Host %s → %s", a.t.hostHdr, r)
	default:
		a.add(CatHost, "host.absolute-uri", Pass, "GET http://evil.example/ with Host %s → %s", a.t.hostHdr, r)
	}

	// CONNECT: never tunnels anywhere reachable (.example does not resolve),
	// and the connection is closed right after the answer.
	r = a.once(ctx, a.t.sni, "CONNECT", a.reqHost("CONNECT", "evil.example:443", "evil.example:443"))
	switch {
	case r.Skipped:
		a.skipBudget(CatHost, "host.connect")
	case r.is2xx():
		a.add(CatHost, "host.connect", Fail, "CONNECT evil.example:443 → %s: the target acts as an open proxy", r)
	default:
		a.add(CatHost, "host.connect", Pass, "CONNECT evil.example:443 → %s", r)
	}

	r = a.do(ctx, "GET", a.reqHost("GET", "/", ""))
	switch {
	case r.Skipped:
		a.skipBudget(CatHost, "host.missing")
	case r.is2xx():
		a.add(CatHost, "host.missing", Warn, "HTTP/1.1 request without Host → %s (RFC 9112: must be 400)", r.long())
	default:
		a.add(CatHost, "host.missing", Pass, "HTTP/1.1 request without Host → %s", r)
	}
}

// fronting keeps SNI on the primary name and names another host in Host:
// every other --host name and a random one.
func (a *auditor) fronting(ctx context.Context) {
	const id = "host.sni-mismatch"
	others := append([]string{}, a.t.hosts[1:min(len(a.t.hosts), 4)]...)
	random := "fronted-" + randToken() + ".invalid"
	others = append(others, random)
	var bad, odd, ok []string
	for _, h := range others {
		r := a.do(ctx, "GET", a.reqHost("GET", "/", a.hostPort(h)))
		line := "Host " + h + " → " + r.String()
		switch {
		case r.Skipped:
			a.skipBudget(CatHost, id)
			return
		case r.is2xx() && h != random && similar(r, a.root):
			ok = append(ok, line+" (same page: an alias of the same site)")
		case r.is2xx():
			bad = append(bad, line)
		case r.is3xx():
			odd = append(odd, line)
		default:
			ok = append(ok, line)
		}
	}
	sni := a.t.sni
	if sni == "" {
		sni = "(none)"
	}
	all := strings.Join(slices.Concat(bad, odd, ok), "; ")
	switch {
	case len(bad) > 0:
		a.add(CatHost, id, Fail, "SNI %s: %s — a TLS session for one name serves another (domain fronting)", sni, all)
	case len(odd) > 0:
		a.add(CatHost, id, Warn, "SNI %s: %s", sni, all)
	default:
		a.add(CatHost, id, Pass, "SNI %s: %s", sni, all)
	}
}
