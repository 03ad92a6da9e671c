package observe

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// accessLog writes the access log: one JSON object per line, with the
// keys and the layout slog's JSONHandler gives the security log ("time",
// "level", "msg", then the fields). It runs once per
// request, so the line is appended into a pooled buffer field by field
// instead of going through slog's generic attribute handling, which cost
// a tenth of the CPU of a cache hit.
type accessLog struct {
	w   io.Writer
	off bool // "off": nothing is encoded at all
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (a accessLog) write(r *http.Request, info *reqinfo.Info, status int, bytes int64, now time.Time) {
	if a.off {
		return
	}
	bp, b := lineStart(now, "access", info, r.Host)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, info.Path)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, info.Route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(now.Sub(info.Start).Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, info.Upstream)
	b = append(b, `,"tls":`...)
	b = appendJSONString(b, info.TLSVersion)
	b = append(b, `,"cache":`...)
	b = appendJSONString(b, info.CacheState)
	a.end(bp, b)
}

// lineStart begins a line in a pooled buffer: time, level, msg and the
// request's id, client and host.
func lineStart(now time.Time, msg string, info *reqinfo.Info, host string) (*[]byte, []byte) {
	bp := linePool.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`...)
	b = append(b, msg...)
	b = append(b, `","request_id":`...)
	b = appendJSONString(b, info.ID)
	b = append(b, `,"client":"`...)
	if a := clientOf(info); a.IsValid() {
		b = a.AppendTo(b)
	}
	b = append(b, `","host":`...)
	return bp, appendJSONString(b, host)
}

// end closes the line, writes it and gives the buffer back to the pool.
func (a accessLog) end(bp *[]byte, b []byte) {
	b = append(b, "}\n"...)
	_, _ = a.w.Write(b)
	if cap(b) <= 4<<10 {
		*bp = b
		linePool.Put(bp)
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as slog escapes it:
// quote, backslash and control characters, U+2028 and U+2029, and invalid
// UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// tunnelEnd writes the line that ends a WebSocket tunnel: the request it
// came from (its id, client, host, path, route, upstream), who ended it,
// how long it was open after the 101 and the bytes it carried each way.
// The request's own line was written at the 101.
func (a accessLog) tunnelEnd(info *reqinfo.Info, host, endedBy string, open time.Duration, fromClient, toClient int64, now time.Time) {
	if a.off {
		return
	}
	bp, b := lineStart(now, "websocket-end", info, host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, info.Path)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, info.Route)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, info.Upstream)
	b = append(b, `,"ended_by":`...)
	b = appendJSONString(b, endedBy)
	b = append(b, `,"open_ms":`...)
	b = strconv.AppendFloat(b, float64(open.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"bytes_from_client":`...)
	b = strconv.AppendInt(b, fromClient, 10)
	b = append(b, `,"bytes_to_client":`...)
	b = strconv.AppendInt(b, toClient, 10)
	a.end(bp, b)
}
