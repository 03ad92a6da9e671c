package pipeline

import (
	"bufio"
	"net"
	"net/http"
	"sync"

	"github.com/rampart-proxy/rampart/internal/protoguard"
)

// statusWriter records the status and size of a response for the access
// log. It keeps Flush and Hijack reachable (streaming, WebSockets) and tells
// the guard when a connection stops carrying HTTP.
type statusWriter struct {
	http.ResponseWriter
	gc     *protoguard.Conn
	status int
	bytes  int64
}

var writerPool = sync.Pool{New: func() any { return new(statusWriter) }}

func newStatusWriter(w http.ResponseWriter, gc *protoguard.Conn) *statusWriter {
	sw := writerPool.Get().(*statusWriter)
	*sw = statusWriter{ResponseWriter: w, gc: gc}
	return sw
}

func releaseStatusWriter(sw *statusWriter) {
	*sw = statusWriter{}
	writerPool.Put(sw)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
	// An informational answer (103 Early Hints, 102 Processing) is useful
	// only now, not held back with the final response.
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols && w.gc != nil {
		_ = w.gc.Flush()
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush sends what the handler has written so far: net/http's buffer,
// then the bytes the guard holds back for one write per response.
func (w *statusWriter) Flush() { _ = w.FlushError() }

func (w *statusWriter) FlushError() error {
	if err := http.NewResponseController(w.ResponseWriter).Flush(); err != nil {
		return err
	}
	if w.gc != nil {
		return w.gc.Flush()
	}
	return nil
}

// Hijack hands the connection to the WebSocket tunnel. The guard stops
// checking HTTP framing on it from then on.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.gc != nil {
		w.gc.Passthrough()
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return c, brw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
