package waf

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// responseInspector runs CRS's response phases (data leakage rules, 95x)
// when response_inspection is on. It holds the status and up to body_limit
// bytes of the body of a response whose Content-Type Coraza inspects, then
// lets the rules decide: the header phase runs at the first write (so that
// a missing Content-Type can be sniffed as net/http will), the body phase
// once the body is complete. A refused response is replaced by the generic 403
// before any byte of it reaches the client. A longer body, or a Flush from
// the upstream handler, ends buffering: what is held is inspected and sent,
// the rest streams uninspected. Responses of other types stream through
// after the response header phase. It keeps http.Hijacker and
// http.Flusher available and unwraps for http.ResponseController.
type responseInspector struct {
	w           *WAF
	tx          types.Transaction
	rw          http.ResponseWriter
	r           *http.Request
	buf         bytes.Buffer
	bufferClaim // buf's bytes, counted against limits.body_buffer_total

	status      int
	wroteHeader bool // the handler has sent its status
	started     bool // the response header phase has run
	streaming   bool // decided: writes go straight through
	refused     bool // decided: the response was replaced, writes are dropped
	hijacked    bool
	detected    bool // detect mode: the rules would have refused the response
	spent       time.Duration
	priorDetect bool // detect mode: the request had already been flagged
}

func newResponseInspector(w *WAF, tx types.Transaction, rw http.ResponseWriter, r *http.Request) *responseInspector {
	return &responseInspector{w: w, tx: tx, rw: rw, r: r, priorDetect: detectionOnlyInterruption(tx) != nil}
}

func (ri *responseInspector) Header() http.Header { return ri.rw.Header() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (ri *responseInspector) Unwrap() http.ResponseWriter { return ri.rw }

func (ri *responseInspector) WriteHeader(code int) {
	if ri.wroteHeader || ri.refused || ri.hijacked {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// Informational responses pass through; the final one follows.
		ri.rw.WriteHeader(code)
		return
	}
	ri.wroteHeader = true
	ri.status = code
}

// start runs the response header phase once the first bytes of the body (or
// its absence) are known: like net/http, a response without a Content-Type
// gets the one sniffed from its first bytes, and the rules see that type.
func (ri *responseInspector) start(first []byte) {
	ri.started = true
	begin := time.Now()
	defer func() { ri.spent += time.Since(begin) }()

	h := ri.rw.Header()
	for k, vs := range h {
		for _, v := range vs {
			ri.tx.AddResponseHeader(k, v)
		}
	}
	if _, set := h["Content-Type"]; !set && len(first) > 0 {
		ri.tx.AddResponseHeader("Content-Type", http.DetectContentType(first))
	}
	if it := ri.tx.ProcessResponseHeaders(ri.status, ri.r.Proto); it != nil {
		ri.refuse()
		return
	}
	ri.noteDetection()
	code := ri.status
	if code == http.StatusSwitchingProtocols || ri.r.Method == http.MethodHead ||
		code == http.StatusNoContent || code == http.StatusNotModified ||
		!ri.tx.IsResponseBodyProcessable() {
		ri.streaming = true
		ri.rw.WriteHeader(code)
	}
}

func (ri *responseInspector) Write(p []byte) (int, error) {
	if !ri.wroteHeader {
		ri.WriteHeader(http.StatusOK)
	}
	if !ri.started && !ri.refused && !ri.hijacked {
		ri.start(p)
	}
	switch {
	case ri.refused || ri.hijacked:
		return len(p), nil
	case ri.streaming:
		return ri.rw.Write(p)
	}
	if !ri.claim(len(p)) {
		return ri.overBudget(p)
	}
	ri.buf.Write(p)
	if int64(ri.buf.Len()) > ri.w.limit {
		ri.decide()
	}
	return len(p), nil
}

// overBudget handles a response whose next bytes would take the buffers
// over limits.body_buffer_total: block mode replaces it by a 503 (what
// cannot be inspected is not sent); detect mode logs it, inspects and
// sends what is held, and streams the rest.
func (ri *responseInspector) overBudget(p []byte) (int, error) {
	attrs := []slog.Attr{slog.String("phase", "response"), slog.Int64("buffer_total", bufferBudget.Load())}
	if ri.w.detect {
		observe.Default().Security(ri.r, Stage, "detect", append(attrs, slog.String("rule", "buffer-budget"))...)
		ri.decide()
		ri.detected = true // after decide: a rules detection there is still logged
		if ri.refused {
			return len(p), nil
		}
		return ri.rw.Write(p)
	}
	ri.replace(http.StatusServiceUnavailable, "buffer-budget", attrs...)
	return len(p), nil
}

// Flush ends buffering (a streaming upstream wants its bytes delivered).
func (ri *responseInspector) Flush() {
	if ri.refused || ri.hijacked {
		return
	}
	if !ri.wroteHeader {
		ri.WriteHeader(http.StatusOK)
	}
	if !ri.started {
		ri.start(nil)
	}
	if !ri.streaming && !ri.refused {
		ri.decide()
	}
	if !ri.refused {
		_ = http.NewResponseController(ri.rw).Flush()
	}
}

// Hijack hands the connection over; nothing more is inspected.
func (ri *responseInspector) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(ri.rw).Hijack()
	if err == nil {
		ri.hijacked = true
	}
	return conn, brw, err
}

// finish completes the response after the handler returned and reports
// whether it was refused.
func (ri *responseInspector) finish() bool {
	defer ri.release()
	if ri.hijacked {
		return false
	}
	if !ri.wroteHeader {
		ri.WriteHeader(http.StatusOK)
	}
	if !ri.started && !ri.refused {
		ri.start(nil)
	}
	if !ri.streaming && !ri.refused {
		ri.decide()
	}
	return ri.refused
}

// decide runs the response body phase over what is held and then sends it
// or refuses the response.
func (ri *responseInspector) decide() {
	start := time.Now()
	data := ri.buf.Bytes()
	inspected := data
	if int64(len(inspected)) > ri.w.limit {
		inspected = inspected[:ri.w.limit]
	}
	it, _, err := ri.tx.WriteResponseBody(inspected)
	if it == nil && err == nil {
		it, err = ri.tx.ProcessResponseBody()
	}
	ri.spent += time.Since(start)
	if it != nil || err != nil {
		ri.refuse()
		return
	}
	ri.noteDetection()
	ri.streaming = true
	ri.rw.WriteHeader(ri.status)
	if len(data) > 0 {
		_, _ = ri.rw.Write(data)
	}
	ri.buf = bytes.Buffer{}
	ri.release()
}

// refuse replaces the upstream response, none of which has been sent, by
// the generic refusal.
func (ri *responseInspector) refuse() {
	ri.replace(http.StatusForbidden, "rules", matchAttrs(ri.tx, true)...)
}

// replace drops the upstream response, none of which has been sent, and
// answers with the generic refusal.
func (ri *responseInspector) replace(status int, reason string, attrs ...slog.Attr) {
	ri.refused = true
	h := ri.rw.Header()
	for k := range h {
		delete(h, k)
	}
	ri.buf = bytes.Buffer{}
	ri.release()
	observe.Refuse(ri.rw, ri.r, status, Stage, reason, attrs...)
}

// noteDetection logs, in detect mode, a response the rules would have
// refused (once, and only if the request itself was not already flagged).
func (ri *responseInspector) noteDetection() {
	if !ri.w.detect || ri.detected || ri.priorDetect {
		return
	}
	if detectionOnlyInterruption(ri.tx) != nil {
		ri.detected = true
		observe.Default().Security(ri.r, Stage, "detect", matchAttrs(ri.tx, true)...)
	}
}

var _ interface {
	http.Flusher
	http.Hijacker
} = (*responseInspector)(nil)
