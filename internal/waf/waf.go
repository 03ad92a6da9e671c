// Package waf is pipeline stage 9: the web application firewall. It runs
// the OWASP Core Rule Set (CRS v4) on Coraza in anomaly-scoring mode over
// every request the router has accepted, and refuses (block mode) or logs
// (detect mode) what the rules score at or above the inbound threshold.
//
// A WAF is built from a Config once per distinct configuration by a Set,
// when the config is loaded; Handler then wraps the rest of the pipeline.
// Per request the handler feeds the connection, the request line and the
// headers to Coraza, reads the body once (up to body_limit) into a pooled
// buffer, feeds it, always runs the request body phase (where CRS decides,
// rule 949110, even for a GET without a body), and forwards the same bytes
// upstream. Before CRS it refuses XML bodies that declare a DOCTYPE or an
// ENTITY (XXE), for which CRS has no rule.
//
// Every refusal goes through observe.Refuse with stage "waf"; detect mode
// logs the same attributes with observe's Security under reason "detect".
// The request id from reqinfo is the Coraza transaction id, so the WAF's
// matched rules, the security event and the client's error page all carry
// one id.
package waf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// Stage is the stage name in refusals, security events and metrics.
const Stage = "waf"

// WAF is one built configuration. It is safe for concurrent use and
// immutable once built.
type WAF struct {
	cfg         Config
	coraza      coraza.WAF // nil when the mode is off
	limit       int64
	partial     bool
	detect      bool
	respInspect bool
}

// buildOptions are hooks for the regression tests.
type buildOptions struct {
	before  string                  // directives between the CRS setup and the CRS rules
	onMatch func(types.MatchedRule) // Coraza's error callback
}

// New builds the WAF for cfg (merged over Defaults). baseDir resolves a
// relative rules_file. Prefer Set.Get, which shares equal configurations.
func New(cfg Config, baseDir string) (*WAF, error) {
	cfg, rules, err := prepare(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	return build(cfg, string(rules), buildOptions{})
}

// prepare merges cfg over Defaults, validates it and reads its rules_file
// (relative to baseDir) when the WAF is on.
func prepare(cfg Config, baseDir string) (Config, []byte, error) {
	cfg = Defaults().Merge(&cfg)
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	if cfg.Mode == ModeOff || cfg.RulesFile == "" {
		return cfg, nil, nil
	}
	rules, err := os.ReadFile(cfg.resolveRulesFile(baseDir))
	if err != nil {
		return cfg, nil, fmt.Errorf("waf.rules_file: %w", err)
	}
	return cfg, rules, nil
}

// build builds cfg, which must be complete (merged over Defaults) and valid.
func build(cfg Config, rules string, opt buildOptions) (*WAF, error) {
	w := &WAF{
		cfg:         cfg,
		limit:       int64(cfg.BodyLimit),
		partial:     cfg.OverLimit == OverLimitPartial,
		detect:      cfg.Mode == ModeDetect,
		respInspect: *cfg.ResponseInspection,
	}
	if cfg.Mode == ModeOff {
		return w, nil
	}
	wc := coraza.NewWAFConfig().
		WithRootFS(rulesFS).
		WithDirectives(directives(cfg, opt.before, rules))
	if opt.onMatch != nil {
		wc = wc.WithErrorCallback(opt.onMatch)
	}
	cw, err := coraza.NewWAF(wc)
	if err != nil {
		return nil, fmt.Errorf("waf: building the rule set: %w", err)
	}
	w.coraza = cw
	if cfg.Mode == ModeDetect {
		tx := cw.NewTransaction()
		_, ok := tx.(interface {
			DetectionOnlyInterruption() *types.Interruption
		})
		_ = tx.Close()
		if !ok {
			return nil, errors.New("waf: this Coraza cannot report detection-only interruptions; detect mode is unavailable")
		}
	}
	return w, nil
}

// Config returns the configuration the WAF was built from.
func (w *WAF) Config() Config { return w.cfg }

// Mode returns the WAF's mode.
func (w *WAF) Mode() Mode { return w.cfg.Mode }

// Handler returns next wrapped by the WAF. In mode off it returns next.
func (w *WAF) Handler(next http.Handler) http.Handler {
	if w == nil || w.coraza == nil {
		return next
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.serve(rw, r, next)
	})
}

func (w *WAF) newTransaction(id string) types.Transaction {
	if id == "" {
		return w.coraza.NewTransaction()
	}
	return w.coraza.NewTransactionWithID(id)
}

func (w *WAF) serve(rw http.ResponseWriter, r *http.Request, next http.Handler) {
	start := time.Now()
	info := reqinfo.Of(r)

	// A declared length over the limit is refused before anything is read.
	if !w.partial && r.ContentLength > w.limit {
		w.tooLarge(rw, r, start)
		return
	}

	tx := w.newTransaction(info.ID)
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()

	it := feedHead(tx, r, info)

	var body *bodyBuffer
	xxe := false
	if it == nil && hasBody(r) {
		counted := &budgetReader{r: r.Body}
		defer counted.release()
		var err error
		body, err = readBody(counted, w.limit)
		if err != nil {
			var mbe *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &mbe):
				w.tooLarge(rw, r, start)
			case errors.Is(err, errBudget):
				// Every body held for inspection together is over
				// limits.body_buffer_total: try again shortly.
				rw.Header().Set("Connection", "close")
				rw.Header().Set("Retry-After", "1")
				w.refuse(rw, r, start, http.StatusServiceUnavailable, "buffer-budget", slog.Int64("buffer_total", bufferBudget.Load()))
			case errors.As(err, &ne) && ne.Timeout():
				observe.BrokenBody(rw, r, err) // 408; the protocol guard logged it
			default:
				w.refuse(rw, r, start, http.StatusBadRequest, "body-read", slog.String("error", err.Error()))
			}
			return
		}
		if body.over && !w.partial {
			body.free()
			w.tooLarge(rw, r, start)
			return
		}
		inspected := body.inspected(w.limit)
		if isXML(r.Header.Get("Content-Type"), inspected) && declaresDTD(inspected) {
			xxe = true
			if !w.detect {
				body.free()
				w.refuse(rw, r, start, http.StatusForbidden, "xxe", xxeAttrs()...)
				return
			}
		}
		if it, _, err = tx.WriteRequestBody(inspected); err != nil {
			body.free()
			w.refuse(rw, r, start, http.StatusInternalServerError, "error", slog.String("error", err.Error()))
			return
		}
	}
	if it == nil {
		var err error
		if it, err = tx.ProcessRequestBody(); err != nil {
			// Deny by default: what could not be inspected is not forwarded.
			body.free()
			w.refuse(rw, r, start, http.StatusInternalServerError, "error", slog.String("error", err.Error()))
			return
		}
	}

	if it != nil {
		// CRS refuses with 403; Coraza's base rules with 400 (a body or URI
		// that does not parse, too many arguments).
		body.free()
		status := it.Status
		if status < 400 || status > 499 {
			status = http.StatusForbidden
		}
		w.refuse(rw, r, start, status, "rules", matchAttrs(tx, false)...)
		return
	}

	result := countPass
	if w.detect {
		if xxe {
			observe.Default().Security(r, Stage, "detect", xxeAttrs()...)
			result = countDetect
		}
		if detectionOnlyInterruption(tx) != nil {
			observe.Default().Security(r, Stage, "detect", matchAttrs(tx, false)...)
			result = countDetect
		}
	}

	if body != nil {
		r.Body = body.reader(r.Body)
		defer body.release()
	}
	spent := time.Since(start)

	if w.respInspect && !isUpgrade(r) {
		ri := newResponseInspector(w, tx, rw, r)
		defer ri.release() // also when next panics (ReverseProxy's ErrAbortHandler)
		next.ServeHTTP(ri, r)
		if ri.finish() {
			result = countBlock
		} else if ri.detected {
			result = countDetect
		}
		spent += ri.spent
	} else {
		next.ServeHTTP(rw, r)
	}
	result.Inc()
	inspectionSeconds.Observe(spent.Seconds())
}

func (w *WAF) tooLarge(rw http.ResponseWriter, r *http.Request, start time.Time) {
	observe.Refuse(rw, r, http.StatusRequestEntityTooLarge, Stage, "body-too-large",
		slog.Int64("content_length", r.ContentLength), slog.Int64("body_limit", w.limit))
	countBodyTooLarge.Inc()
	inspectionSeconds.Observe(time.Since(start).Seconds())
}

// refuse answers r with the generic refusal and counts a block.
func (w *WAF) refuse(rw http.ResponseWriter, r *http.Request, start time.Time, status int, reason string, attrs ...slog.Attr) {
	observe.Refuse(rw, r, status, Stage, reason, attrs...)
	countBlock.Inc()
	inspectionSeconds.Observe(time.Since(start).Seconds())
}

func xxeAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("rule", "xxe"),
		slog.String("detail", "XML body declares a DOCTYPE or ENTITY"),
	}
}

// feedHead gives Coraza the connection, the request line and the headers
// and runs phase 1.
func feedHead(tx types.Transaction, r *http.Request, info *reqinfo.Info) *types.Interruption {
	client, port := clientOf(r, info)
	tx.ProcessConnection(client, port, "", 0)
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	tx.ProcessURI(uri, r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	// net/http moves Host and Transfer-Encoding out of the header map; CRS
	// has rules on both (920280, 920171 and the smuggling rules).
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(hostOnly(r.Host))
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	if r.ContentLength > 0 && len(r.Header["Content-Length"]) == 0 {
		tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	return tx.ProcessRequestHeaders()
}

func clientOf(r *http.Request, info *reqinfo.Info) (string, int) {
	if info.Client.IsValid() {
		port := 0
		if info.Peer.IsValid() && info.Peer.Addr() == info.Client {
			port = int(info.Peer.Port())
		}
		return info.Client.String(), port
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().String(), int(ap.Port())
	}
	return r.RemoteAddr, 0
}

func hostOnly(host string) string {
	if h, _, err := splitHostPort(host); err == nil {
		return h
	}
	return host
}

func splitHostPort(host string) (string, string, error) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.HasSuffix(host, "]") {
		return strings.Trim(host, "[]"), "", nil
	}
	return strings.Trim(host[:i], "[]"), host[i+1:], nil
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// detectionOnlyInterruption returns what the transaction would have been
// interrupted with had the engine been On (Coraza keeps it since 3.4; build
// checks that the accessor exists, so detect mode cannot silently go blind).
func detectionOnlyInterruption(tx types.Transaction) *types.Interruption {
	if d, ok := tx.(interface {
		DetectionOnlyInterruption() *types.Interruption
	}); ok {
		return d.DetectionOnlyInterruption()
	}
	return nil
}

// bodyBuffer is a request body read once into a pooled buffer. It is
// returned to the pool when both the handler has returned and the reader
// handed upstream has been closed (the transport may still be reading after
// the handler returned); if the reader is never closed the buffer is simply
// left to the garbage collector.
type bodyBuffer struct {
	buf  *bytes.Buffer
	over bool // more than limit bytes were sent
	refs atomic.Int32
	rd   bodyReader // the reader handed upstream (one allocation for both)
}

// maxPooled keeps unusually large buffers out of the pool.
const maxPooled = 4 << 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads at most limit+1 bytes of body.
func readBody(body io.Reader, limit int64) (*bodyBuffer, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(body, limit+1)); err != nil {
		putBuffer(buf)
		return nil, err
	}
	b := &bodyBuffer{buf: buf, over: int64(buf.Len()) > limit}
	b.refs.Store(1)
	return b, nil
}

// inspected is the part of the body given to the rules.
func (b *bodyBuffer) inspected(limit int64) []byte {
	data := b.buf.Bytes()
	if int64(len(data)) > limit {
		data = data[:limit]
	}
	return data
}

// reader returns the body to forward: all buffered bytes, then what is
// left of rest when the body was over the limit.
func (b *bodyBuffer) reader(rest io.ReadCloser) io.ReadCloser {
	b.refs.Add(1)
	b.rd.b, b.rd.data = b, b.buf.Bytes()
	if b.over {
		b.rd.rest = rest
	}
	return &b.rd
}

// release drops one reference.
func (b *bodyBuffer) release() {
	if b.refs.Add(-1) == 0 {
		putBuffer(b.buf)
		b.buf = nil
	}
}

// free releases a body that was never forwarded.
func (b *bodyBuffer) free() {
	if b != nil {
		b.release()
	}
}

func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooled {
		bufPool.Put(buf)
	}
}

// bodyReader reads the buffered bytes, then rest. The transport may close
// a request body from another goroutine while reading it, so the buffered
// part is read under a lock, and Close gives the buffer back only once no
// copy from it is in progress.
type bodyReader struct {
	b      *bodyBuffer
	mu     sync.Mutex
	data   []byte
	closed bool
	rest   io.ReadCloser
}

func (br *bodyReader) Read(p []byte) (int, error) {
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if len(br.data) > 0 {
		n := copy(p, br.data)
		br.data = br.data[n:]
		br.mu.Unlock()
		return n, nil
	}
	br.mu.Unlock()
	if br.rest != nil {
		return br.rest.Read(p)
	}
	return 0, io.EOF
}

func (br *bodyReader) Close() error {
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return nil
	}
	br.closed = true
	br.data = nil
	br.mu.Unlock()
	br.b.release()
	if br.rest != nil {
		return br.rest.Close()
	}
	return nil
}
