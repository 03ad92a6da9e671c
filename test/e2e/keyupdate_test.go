package e2e

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	bin "encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A TLS 1.3 client may ask for a KeyUpdate in return for its own; crypto/tls
// writes that answer from the read side. A client that floods KeyUpdates
// and never reads fills its socket until that write blocks: without a
// deadline on it, the connection and its goroutine were held for good. Every
// write after the handshake is now bounded by send_timeout.
func TestKeyUpdateFloodFromAClientThatDoesNotReadEndsAtSendTimeout(t *testing.T) {
	cfg := strings.Replace(baseConfig, "  max_body: 64KiB\n", "  max_body: 64KiB\n  send_timeout: 800ms\n  body_read_timeout: 30s\n", 1)
	e := start(t, cfg)
	base := e.openConnections(t)
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	raw, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var keylog bytes.Buffer
	conf := e.tlsConf("app.test")
	conf.MinVersion, conf.KeyLogWriter = tls.VersionTLS13, &keylog
	conf.CipherSuites = nil
	tc := tls.Client(raw, conf)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if cs := tc.ConnectionState().CipherSuite; cs != tls.TLS_AES_128_GCM_SHA256 {
		t.Skipf("cipher suite %x negotiated; the record writer below speaks AES-128-GCM only", cs)
	}
	w := &recordWriter{}
	sc := bufio.NewScanner(&keylog)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
			s, _ := hex.DecodeString(f[2])
			w.setSecret(s)
		}
	}
	if w.aead == nil {
		t.Fatal("no client traffic secret in the key log")
	}
	write := func(b []byte) error {
		_ = raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := raw.Write(b)
		return err
	}
	// A request whose body comes one byte per 15 KeyUpdates (crypto/tls
	// accepts 16 records in a row that carry no data); nothing is read.
	if err := write(w.record(0x17, []byte("POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 60000\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	// The flood goes on until the server stops reading (its answers are
	// stuck, so the client's own writes stall): how many KeyUpdates that
	// takes depends on the socket buffers, not on time, so a loaded machine
	// gets longer to send them (up to 12 s).
	flood := time.Now()
	for time.Since(flood) < 12*time.Second {
		var batch []byte
		for i := 0; i < 15; i++ {
			batch = append(batch, w.keyUpdate()...)
		}
		if err := write(append(batch, w.record(0x17, []byte("x"))...)); err != nil {
			// The server stopped reading: its answers are stuck, and the
			// client's writes stall. With large socket buffers the client
			// may still be writing when the server's stuck answer has
			// timed out and the connection is closed: a reset then, which
			// cannot come before send_timeout has passed. Anything else is
			// another failure.
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			reset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
			if !timedOut && !(reset && time.Since(flood) >= 800*time.Millisecond) {
				t.Fatalf("flood write failed after %v with %v, want a timeout (the server no longer reading) or a reset after send_timeout", time.Since(flood), err)
			}
			break
		}
	}
	stalled := time.Now()
	if stalled.Sub(flood) >= 12*time.Second {
		t.Fatal("the server read a 12 s flood of KeyUpdates without its answers ever getting stuck")
	}
	waitFor(t, "the connection to be closed", func() bool { return e.openConnections(t) <= base })
	// The client's stalled write gave up after 2 s; the server's stuck
	// answer, which began stalling before it, must have ended at the
	// 800 ms send_timeout, so the connection is closed by now or soon.
	if d := time.Since(stalled); d > 2*time.Second {
		t.Errorf("closed %v after the client's writes stalled, want within send_timeout of the server's stuck write", d)
	}
}

func (e *env) openConnections(t *testing.T) int {
	t.Helper()
	f, err := strconv.ParseFloat(e.metric("rampart_connections_open"), 64)
	if err != nil {
		t.Fatal("no rampart_connections_open in the metrics")
	}
	return int(f)
}

// recordWriter seals TLS 1.3 records with the client's traffic secret (from
// the key log): crypto/tls has no API to send a KeyUpdate.
// TLS_AES_128_GCM_SHA256 only.
type recordWriter struct {
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func expandLabel(secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := append([]byte{byte(n >> 8), byte(n), byte(len(full))}, full...)
	info = append(info, 0) // no context
	out, err := hkdf.Expand(sha256.New, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func (w *recordWriter) setSecret(s []byte) {
	w.secret = s
	block, _ := aes.NewCipher(expandLabel(s, "key", 16))
	w.aead, _ = cipher.NewGCM(block)
	w.iv = expandLabel(s, "iv", 12)
	w.seq = 0
}

func (w *recordWriter) record(typ byte, payload []byte) []byte {
	nonce := bytes.Clone(w.iv)
	var seq [8]byte
	bin.BigEndian.PutUint64(seq[:], w.seq)
	for i := range seq {
		nonce[4+i] ^= seq[i]
	}
	w.seq++
	plain := append(bytes.Clone(payload), typ)
	hdr := []byte{0x17, 0x03, 0x03, 0, 0}
	bin.BigEndian.PutUint16(hdr[3:], uint16(len(plain)+w.aead.Overhead()))
	return w.aead.Seal(hdr, nonce, plain, hdr)
}

// keyUpdate is a KeyUpdate asking for one in return; later records use the
// next secret.
func (w *recordWriter) keyUpdate() []byte {
	rec := w.record(0x16, []byte{24, 0, 0, 1, 1})
	w.setSecret(expandLabel(w.secret, "traffic upd", 32))
	return rec
}
