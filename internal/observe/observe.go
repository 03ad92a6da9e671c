// Package observe is how every stage makes its decisions visible: the JSON
// access log, the separate security-event log and the Prometheus metrics.
//
// A refusal always goes through Refuse, so that each one gets the same
// generic body, the request id, a security event naming the stage and the
// reason, and a count in rampart_refusals_total{stage,reason}.
package observe

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// Observer holds the two logs. Metrics live in the process-wide registry
// (see metrics.go) because Prometheus series must outlive config reloads.
type Observer struct {
	access   accessLog
	security *slog.Logger
}

var current atomic.Pointer[Observer]

func init() {
	current.Store(New(io.Discard, io.Discard))
}

// New returns an Observer writing JSON lines to the given writers.
func New(access, security io.Writer) *Observer {
	return &Observer{
		access:   accessLog{w: access, off: access == io.Discard},
		security: slog.New(slog.NewJSONHandler(security, nil)),
	}
}

// SetDefault makes o the observer every stage writes to.
func SetDefault(o *Observer) { current.Store(o) }

// Default returns the observer in effect.
func Default() *Observer { return current.Load() }

// Security logs a security event for request r.
func (o *Observer) Security(r *http.Request, stage, reason string, attrs ...slog.Attr) {
	info := reqinfo.Of(r)
	base := []slog.Attr{
		slog.String("stage", stage),
		slog.String("reason", reason),
		slog.String("request_id", info.ID),
		slog.String("client", addrString(info)),
		slog.String("host", r.Host),
		slog.String("method", r.Method),
		slog.String("uri", Truncate(r.RequestURI, 256)),
	}
	o.security.LogAttrs(context.Background(), slog.LevelWarn, "security", append(base, attrs...)...)
}

// SecurityConn logs a security event that happened before any request
// existed (a refused connection or handshake).
func (o *Observer) SecurityConn(stage, reason, client string, attrs ...slog.Attr) {
	base := []slog.Attr{
		slog.String("stage", stage),
		slog.String("reason", reason),
		slog.String("client", client),
	}
	o.security.LogAttrs(context.Background(), slog.LevelWarn, "security", append(base, attrs...)...)
	Metrics.Refusals.WithLabelValues(stage, reason).Inc()
}

// Event logs an operational message (reload, store failure) on the security log.
func (o *Observer) Event(level slog.Level, msg string, attrs ...slog.Attr) {
	o.security.LogAttrs(context.Background(), level, msg, attrs...)
}

// Access logs one finished request.
func (o *Observer) Access(r *http.Request, status int, bytes int64) {
	o.access.write(r, reqinfo.Of(r), status, bytes, time.Now())
}

// TunnelEnd logs the end of a WebSocket tunnel opened by the request of
// info: who ended it (client, upstream, idle, server), how long it was
// open and the bytes it carried from and to the client.
func (o *Observer) TunnelEnd(info *reqinfo.Info, host, endedBy string, open time.Duration, fromClient, toClient int64) {
	o.access.tunnelEnd(info, host, endedBy, open, fromClient, toClient, time.Now())
}

// clientOf is the address a log line names as the client: the resolved
// client identity, else the TCP peer; invalid when neither is known.
func clientOf(info *reqinfo.Info) netip.Addr {
	if info.Client.IsValid() {
		return info.Client
	}
	return info.Peer.Addr()
}

func addrString(info *reqinfo.Info) string {
	if a := clientOf(info); a.IsValid() {
		return a.String()
	}
	return ""
}

// Clip cuts s to at most n bytes on a rune boundary.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Truncate is Clip marking a cut with "…": for values quoted in logs.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Clip(s, n) + "…"
}

// Refuse answers r with status and a generic body that names only the
// status and the request id, logs a security event and counts the refusal.
// Nothing of the request or of any upstream is echoed back.
func Refuse(w http.ResponseWriter, r *http.Request, status int, stage, reason string, attrs ...slog.Attr) {
	Default().Security(r, stage, reason, append(attrs, slog.Int("status", status))...)
	Metrics.Refusals.WithLabelValues(stage, reason).Inc()
	WriteError(w, r, status)
}

// WriteError writes the generic error body for status.
func WriteError(w http.ResponseWriter, r *http.Request, status int) {
	id := reqinfo.Of(r).ID
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if id != "" {
		h.Set("X-Request-ID", id)
	}
	body := strconv.Itoa(status) + " " + http.StatusText(status) + "\nrequest id: " + id + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

// BrokenBody answers a request whose body broke off while it was being
// read: 408 when the client stalled or was too slow (the protocol guard
// has logged that, with the figures), 400 otherwise; the connection
// closes, as the body's framing can no longer be trusted. No event: the
// client's failure is not an upstream's or a stage's.
func BrokenBody(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadRequest
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		status = http.StatusRequestTimeout
	}
	w.Header().Set("Connection", "close")
	WriteError(w, r, status)
}

// BufferedWriter batches log lines and flushes them every interval, so that
// a log write on the request path is a memory copy, not a system call.
type BufferedWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewBufferedWriter wraps w; Close flushes and stops the flusher.
func NewBufferedWriter(w io.Writer, interval time.Duration) *BufferedWriter {
	b := &BufferedWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				b.Flush()
				return
			}
		}
	}()
	return b
}

func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() {
	b.mu.Lock()
	_ = b.w.Flush()
	b.mu.Unlock()
}

// Close flushes and stops the background flusher.
func (b *BufferedWriter) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.done
	return nil
}

// OpenLog opens a log destination: "stdout", "stderr", "off" or a file path
// (appended to, created 0640).
func OpenLog(dest string) (io.Writer, error) {
	switch dest {
	case "", "stdout":
		return os.Stdout, nil
	case "stderr":
		return os.Stderr, nil
	case "off":
		return io.Discard, nil
	}
	return os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}
