package audit

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
)

func (a *auditor) runProtocol(ctx context.Context) {
	a.http2(ctx)

	// HTTP/1.0: a proxy that speaks it has fewer framing guarantees
	// (no chunked, keep-alive by header) and no mandatory Host.
	r := a.once(ctx, a.t.sni, "GET", "GET / HTTP/1.0\r\nHost: "+a.t.hostHdr+"\r\nUser-Agent: "+userAgent+"\r\n\r\n")
	a.noPage(CatProtocol, "protocol.http10", r, Fail, "GET / HTTP/1.0", "HTTP/1.0 accepted")

	a.plainHTTP(ctx)

	r = a.do(ctx, "TRACE", a.req("TRACE", "/", "X-Audit-Trace: "+randToken()))
	a.noPage(CatProtocol, "protocol.trace", r, Fail, "TRACE /", "TRACE answered (cross-site tracing, header echo)")

	r = a.do(ctx, "OPTIONS", a.req("OPTIONS", "/"))
	switch {
	case r.Skipped:
		a.skipBudget(CatProtocol, "protocol.options")
	case r.is2xx():
		allow := r.Header.Get("Allow")
		if allow == "" {
			allow = "no Allow header"
		}
		a.add(CatProtocol, "protocol.options", Warn, "OPTIONS / → %d (%s): methods the site does not need should be refused", r.Status, clip(allow, 100))
	default:
		a.add(CatProtocol, "protocol.options", Pass, "OPTIONS / → %s", r)
	}

	r = a.do(ctx, "FOO", a.req("FOO", "/"))
	a.noPage(CatProtocol, "protocol.unknown-method", r, Warn, "FOO /", "unknown method answered as a page")
}

// noPage grades a request that should not get a page: a 2xx answer is
// graded bad, with why after the evidence, and any other answer passes.
func (a *auditor) noPage(cat, id string, r *response, bad Status, what, why string) {
	switch {
	case r.Skipped:
		a.skipBudget(cat, id)
	case r.is2xx():
		a.add(cat, id, bad, "%s → %s: %s", what, r.long(), why)
	default:
		a.add(cat, id, Pass, "%s → %s", what, r)
	}
}

// http2 offers h2 and http/1.1 by ALPN.
func (a *auditor) http2(ctx context.Context) {
	const id = "protocol.http2"
	conf := a.httpTLS(a.t.sni)
	conf.NextProtos = []string{"h2", "http/1.1"}
	st, unreachable, err := a.handshake(ctx, conf)
	switch {
	case err == errBudget:
		a.skipBudget(CatProtocol, id)
	case unreachable:
		a.add(CatProtocol, id, Skip, "no answer: %s", clip(err.Error(), 120))
	case err != nil:
		a.add(CatProtocol, id, Pass, "ALPN [h2 http/1.1] offered: handshake %s", refusalText(err))
	case st.NegotiatedProtocol == "h2":
		a.add(CatProtocol, id, Fail, "ALPN [h2 http/1.1] offered: server chose h2 (a second parser and framing in front of the upstream)")
	case st.NegotiatedProtocol == "":
		a.add(CatProtocol, id, Pass, "ALPN [h2 http/1.1] offered: server chose no protocol (HTTP/1.1)")
	default:
		a.add(CatProtocol, id, Pass, "ALPN [h2 http/1.1] offered: server chose %s", st.NegotiatedProtocol)
	}
}

// plainHTTP sends a cleartext request to the TLS port.
func (a *auditor) plainHTTP(ctx context.Context) {
	const id = "protocol.plain-http"
	got, err := a.onceTCP(ctx, "GET / HTTP/1.1\r\nHost: "+a.t.hostHdr+"\r\nUser-Agent: "+userAgent+"\r\nConnection: close\r\n\r\n")
	switch {
	case err == errBudget:
		a.skipBudget(CatProtocol, id)
	case bytes.HasPrefix(got, []byte("HTTP/")):
		line, _, _ := strings.Cut(string(got), "\r\n")
		a.add(CatProtocol, id, Fail, "cleartext GET / on the TLS port answered: %q", clip(line, 80))
	case len(got) > 0 && got[0] == 0x15:
		a.add(CatProtocol, id, Pass, "cleartext GET / on the TLS port: TLS alert, no page")
	case len(got) > 0:
		a.add(CatProtocol, id, Pass, "cleartext GET / on the TLS port: %d non-HTTP bytes, no page", len(got))
	case err != nil && isTimeout(err):
		a.add(CatProtocol, id, Pass, "cleartext GET / on the TLS port: no answer within %v", a.t.timeout)
	default:
		a.add(CatProtocol, id, Pass, "cleartext GET / on the TLS port: connection closed, no page")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
