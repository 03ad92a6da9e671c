package audit

import "context"

// smugglingProbes are requests with ambiguous framing. Each body is
// complete and harmless under every reading: `0\r\n\r\n` is both an empty
// chunked body and 5 bytes of Content-Length; for the duplicate lengths the
// two extra bytes are a CRLF, which a server reading the shorter length
// skips as an empty line before the next request. Nothing is left on the
// connection for a next request to inherit, and the connection is closed.
var smugglingProbes = []struct {
	id, what string
	headers  []string
	body     string
}{
	{"smuggling.cl-te", "Content-Length and Transfer-Encoding: chunked",
		[]string{"Content-Length: 5", "Transfer-Encoding: chunked"}, "0\r\n\r\n"},
	{"smuggling.te-xchunked", "Transfer-Encoding: xchunked with Content-Length",
		[]string{"Content-Length: 5", "Transfer-Encoding: xchunked"}, "0\r\n\r\n"},
	{"smuggling.te-leading-space", "Transfer-Encoding with a space before the colon and a leading space in the value, with Content-Length",
		[]string{"Content-Length: 5", "Transfer-Encoding :  chunked"}, "0\r\n\r\n"},
	{"smuggling.te-obs-fold", "Transfer-Encoding continued on an obs-fold line, with Content-Length",
		[]string{"Content-Length: 5", "Transfer-Encoding:", " chunked"}, "0\r\n\r\n"},
	{"smuggling.cl-duplicate", "two different Content-Length headers",
		[]string{"Content-Length: 4", "Content-Length: 6"}, "abcd\r\n"},
}

func (a *auditor) runSmuggling(ctx context.Context) {
	for _, p := range smugglingProbes {
		raw := a.req("GET", "/", append(append([]string{}, p.headers...), "Connection: close")...) + p.body
		r := a.once(ctx, a.t.sni, "GET", raw)
		switch {
		case r.Skipped:
			a.add(CatSmuggling, p.id, Skip, budgetMsg, a.t.maxReq)
		case r.Status == 400 || (!r.answered() && r.Closed):
			a.add(CatSmuggling, p.id, Pass, "GET / with %s → %s", p.what, r)
		case r.Status == 501 && p.id == "smuggling.te-xchunked":
			a.add(CatSmuggling, p.id, Pass, "GET / with %s → 501 (unknown coding refused)", p.what)
		case r.is2xx():
			a.add(CatSmuggling, p.id, Fail, "GET / with %s → %s: ambiguous framing accepted; a server behind may read it differently", p.what, r.long())
		case r.Timeout:
			a.add(CatSmuggling, p.id, Warn, "GET / with %s: no answer within %v (neither refused nor answered)", p.what, a.t.timeout)
		case !r.answered():
			a.add(CatSmuggling, p.id, Skip, "GET / with %s: %s", p.what, r)
		default:
			a.add(CatSmuggling, p.id, Warn, "GET / with %s → %s: not refused as malformed (want 400)", p.what, r)
		}
	}
}
