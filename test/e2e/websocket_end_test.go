package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// registryValue reads a counter of the process's metrics registry by one
// label.
func registryValue(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := observe.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// accessLines decodes the access log written to {{DIR}}/access.log.
func (e *env) accessLines() []map[string]any {
	f, err := os.Open(filepath.Join(e.dir, "access.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// When a WebSocket tunnel ends, the access log gets a websocket-end line
// with the request id of its 101, who ended it, how long it was open and
// the bytes it carried each way: for a client that leaves, an idle
// timeout, an upstream that closes and a shutdown.
func TestWebSocket_EndIsLoggedWithWhoEndedItAndTheBytes(t *testing.T) {
	cfg := strings.Replace(baseConfig, "log: {access: off,", `log: {access: "{{DIR}}/access.log",`, 1)
	cfg = strings.Replace(cfg, "websocket: true", "websocket: true\n        websocket_idle_timeout: 700ms", 1)
	e := start(t, cfg)

	// The client leaves (TCP close without a close handshake) after three
	// echoes of 5 bytes: masked client frames are 11 bytes, the upstream's 7.
	leaver := wsDial(t, e, "/ws")
	for range 3 {
		wsEcho(t, leaver, "hello")
	}
	leaver.CloseNow()
	// The upstream drops its connection.
	byeSocket := wsDial(t, e, "/ws")
	wsEcho(t, byeSocket, "hi")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := byeSocket.Write(ctx, websocket.MessageText, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	_, _, _ = byeSocket.Read(ctx)
	// One stays silent past the idle timeout.
	quiet := wsDial(t, e, "/ws")
	wsEcho(t, quiet, "shh")

	ends := func() map[string]map[string]any {
		byEnd := map[string]map[string]any{}
		for _, m := range e.accessLines() {
			if m["msg"] == "websocket-end" {
				byEnd[m["ended_by"].(string)] = m
			}
		}
		return byEnd
	}
	defer func() {
		if t.Failed() {
			for _, m := range e.accessLines() {
				t.Logf("%v", m)
			}
		}
	}()
	waitFor(t, "client, upstream and idle ends logged", func() bool { return len(ends()) == 3 })

	// A last one is open when the server drains.
	drained := wsDial(t, e, "/ws")
	wsEcho(t, drained, "last")
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	_ = e.srv.Shutdown(sctx)
	waitFor(t, "the drained end logged", func() bool { return ends()["server"] != nil })

	got := ends()
	opened := map[string]bool{} // request ids of the 101 lines
	for _, m := range e.accessLines() {
		if m["msg"] == "access" && m["status"] == float64(101) {
			opened[m["request_id"].(string)] = true
		}
	}
	for by, m := range got {
		if id, _ := m["request_id"].(string); !opened[id] {
			t.Errorf("%s end: request_id %q is not one of a 101 line (%v)", by, id, opened)
		}
		if m["host"] != "app.test" || m["path"] != "/ws" || m["client"] != "127.0.0.1" {
			t.Errorf("%s end: host/path/client = %v/%v/%v", by, m["host"], m["path"], m["client"])
		}
	}
	// The same ends, counted (read in process: the drain closed the admin
	// listener; other tests' tunnels count too, so at least these four).
	for _, by := range []string{"client", "upstream", "idle", "server"} {
		if v := registryValue(t, "rampart_websockets_ended_total", "ended_by", by); v < 1 {
			t.Errorf("rampart_websockets_ended_total{ended_by=%q} = %v, want at least 1", by, v)
		}
	}
	if v := registryValue(t, "rampart_websocket_bytes_total", "direction", "from_client"); v < 33 {
		t.Errorf("rampart_websocket_bytes_total from clients = %v, want at least the 33 bytes of the first tunnel", v)
	}
	in, out := got["client"]["bytes_from_client"].(float64), got["client"]["bytes_to_client"].(float64)
	if in < 33 || out < 21 || in > 200 || out > 200 {
		t.Errorf("client end: %v bytes from and %v to the client, want at least 33 and 21 (three 5-byte echoes)", in, out)
	}
	if ms := got["idle"]["open_ms"].(float64); ms < 600 || ms > 5000 {
		t.Errorf("idle end after %v ms, want about the 700 ms idle timeout", ms)
	}
	if b := got["upstream"]["bytes_to_client"].(float64); b != 4 {
		t.Errorf("upstream end: %v bytes to the client, want the 4-byte echo", b)
	}
}

// A tunnel carrying traffic when the drain closes it is logged as ended by
// the server, not by the client, although its pumps see the client's
// connection fail before the close hook runs.
func TestWebSocket_BusyTunnelClosedByTheDrainIsLoggedAsServer(t *testing.T) {
	cfg := strings.Replace(baseConfig, "log: {access: off,", `log: {access: "{{DIR}}/access.log",`, 1)
	e := start(t, cfg)
	c := wsDial(t, e, "/ws")
	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.Write(ctx, websocket.MessageText, []byte("busy"))
			if err == nil {
				_, _, err = c.Read(ctx)
			}
			cancel()
			if err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	_ = e.srv.Shutdown(sctx)
	close(stop)
	<-busy
	var by string
	waitFor(t, "the end logged", func() bool {
		for _, m := range e.accessLines() {
			if m["msg"] == "websocket-end" {
				by, _ = m["ended_by"].(string)
				return true
			}
		}
		return false
	})
	if by != "server" {
		t.Errorf("a busy tunnel closed by the drain was logged as ended by %q, want server", by)
	}
}
