package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

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
	{"smuggling.cl-te", "CL+TE",
		[]string{"Content-Length: 5", "Transfer-Encoding: chunked"}, "0\r\n\r\n"},
	{"smuggling.te-xchunked", "unknown coding",
		[]string{"Content-Length: 5", "Transfer-Encoding: xchunked"}, "0\r\n\r\n"},
	{"smuggling.te-leading-space", "malformed TE header name",
		[]string{"Content-Length: 5", "Transfer-Encoding :  chunked"}, "0\r\n\r\n"},
	{"smuggling.te-obs-fold", "TE on an obs-fold line",
		[]string{"Content-Length: 5", "Transfer-Encoding:", " chunked"}, "0\r\n\r\n"},
	{"smuggling.cl-duplicate", "duplicate CL",
		[]string{"Content-Length: 4", "Content-Length: 6"}, "abcd\r\n"},
}

func (a *auditor) runSmuggling(ctx context.Context) {
	for _, p := range smugglingProbes {
		raw := a.req("GET", "/", append(slices.Clone(p.headers), "Connection: close")...) + p.body
		r := a.once(ctx, a.t.sni, "GET", raw)
		what := fmt.Sprintf("%s: GET / with %q, body %q", p.what, strings.Join(p.headers, "\r\n"), p.body)
		switch {
		case r.Skipped:
			a.skipBudget(CatSmuggling, p.id)
		case r.Status == 400 || (!r.answered() && r.Closed):
			a.add(CatSmuggling, p.id, Pass, "%s → %s", what, r)
		case r.Status == 501 && p.id == "smuggling.te-xchunked":
			a.add(CatSmuggling, p.id, Pass, "%s → 501 (unknown coding refused)", what)
		case r.is2xx():
			a.add(CatSmuggling, p.id, Fail, "%s → %s: ambiguous framing accepted; a server behind may read it differently", what, r.long())
		case r.Timeout:
			a.add(CatSmuggling, p.id, Warn, "%s: no answer within %v (neither refused nor answered)", what, a.t.timeout)
		case !r.answered():
			a.add(CatSmuggling, p.id, Skip, "%s: %s", what, r)
		default:
			a.add(CatSmuggling, p.id, Warn, "%s → %s: not refused as malformed (want 400)", what, r)
		}
	}
}
