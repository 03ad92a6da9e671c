package waf

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestBodyBuffer_ReadsOnceAndForwardsSameBytes(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		limit     int64
		over      bool
		inspected string
	}{
		{"Under", "hello", 10, false, "hello"},
		{"Exact", "0123456789", 10, false, "0123456789"},
		{"Over", "0123456789abc", 10, true, "0123456789"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.NewReader(c.body)
			b, err := readBody(src, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if b.over != c.over || string(b.inspected(c.limit)) != c.inspected {
				t.Fatalf("over %v inspected %q", b.over, b.inspected(c.limit))
			}
			rd := b.reader(io.NopCloser(src))
			got, err := io.ReadAll(rd)
			if err != nil || string(got) != c.body {
				t.Errorf("forwarded %q %v, want %q", got, err, c.body)
			}
			_ = rd.Close()
			b.release()
			if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, http.ErrBodyReadAfterClose) {
				t.Errorf("read after close: %v", err)
			}
		})
	}
}

// The reader handed upstream gives the buffered bytes, then the rest of an
// over-limit body.
func TestBodyBuffer_ReaderGivesTheBufferThenTheRest(t *testing.T) {
	src := strings.NewReader("0123456789abcdef")
	b, err := readBody(src, 8)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rd := b.reader(io.NopCloser(src))
	if n, err := io.Copy(&out, rd); err != nil || n != 16 || out.String() != "0123456789abcdef" {
		t.Errorf("copied %d %q %v", n, out.String(), err)
	}
	_ = rd.Close()
	b.release()
}

// The transport may close the request body from another goroutine while it
// is being read; with the race detector this checks the buffer is not
// returned to the pool under a reader.
func TestBodyBuffer_ConcurrentCloseAndRead(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 64<<10)
	for range 50 {
		b, err := readBody(bytes.NewReader(payload), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		rd := b.reader(http.NoBody)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, struct{ io.Reader }{rd})
		}()
		go func() {
			defer wg.Done()
			_ = rd.Close()
		}()
		b.release() // the handler returns
		wg.Wait()
		// Reuse the pool meanwhile.
		other, _ := readBody(bytes.NewReader(bytes.Repeat([]byte("y"), 64<<10)), 1<<20)
		other.release()
	}
}

func TestMaskValue(t *testing.T) {
	cases := []struct{ variable, key, value, want string }{
		{"REQUEST_HEADERS", "Authorization", "Basic YWdlbnQ6cHc=", masked},
		{"REQUEST_HEADERS", "cookie", "JSESSIONID=abc", masked},
		{"REQUEST_COOKIES", "JSESSIONID", "abc", masked},
		{"ARGS", "j_password", "' or 1=1", masked},
		{"ARGS_POST", "json.refresh_token", "x", masked},
		{"ARGS", "apiSecret", "x", masked},
		{"ARGS", "user_pwd", "x", masked},
		{"ARGS", "note", "1' OR '1'='1", "1' OR '1'='1"},
		{"ARGS_NAMES", "password", "password", "password"},
		{"REQUEST_BODY", "", "user=a&password=hunter2&x=1", "user=a&password=" + masked + "&x=1"},
		{"REQUEST_BODY", "", `{"token":"abc.def","q":"x"}`, `{"token":"` + masked + `","q":"x"}`},
		{"REQUEST_URI", "", "/x?access_token=zzz&a=b", "/x?access_token=" + masked + "&a=b"},
		{"REQUEST_HEADERS", "X-Forwarded", "Bearer abc.def", "Bearer " + masked},
	}
	for _, c := range cases {
		if got := maskValue(c.variable, c.key, c.value); got != c.want {
			t.Errorf("maskValue(%s, %s, %q) = %q, want %q", c.variable, c.key, c.value, got, c.want)
		}
	}
}
