package bruteforce

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

const (
	// maxBodyPeek is how much of a login body is read to find the user name.
	maxBodyPeek = 64 << 10
	// maxUsername bounds a user name as it enters keys, logs and syslog.
	maxUsername = 256
)

// username returns the user name the request names, per the site's
// config, or "". Bodies are read only on counted routes, at most
// maxBodyPeek bytes, and r.Body is restored so that the upstream receives
// exactly what the client sent.
func (g *Guard) username(r *http.Request, counted bool) string {
	u := g.cfg.Username
	if u.Basic {
		if name, _, ok := r.BasicAuth(); ok && name != "" {
			return clip(name)
		}
	}
	if !counted || (u.FormField == "" && u.JSONField == "") || r.Body == nil || r.Body == http.NoBody {
		return ""
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return ""
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isForm := mt == "application/x-www-form-urlencoded" && u.FormField != ""
	isJSON := (mt == "application/json" || strings.HasSuffix(mt, "+json")) && u.JSONField != ""
	if !isForm && !isJSON {
		return ""
	}
	body, complete := peekBody(r, maxBodyPeek)
	if !complete {
		return ""
	}
	var name string
	if isForm {
		if v, err := url.ParseQuery(string(body)); err == nil {
			name = v.Get(u.FormField)
		}
	} else {
		name = jsonString(body, u.JSONField)
	}
	return clip(name)
}

// peekBody reads up to limit bytes of r.Body and puts them back in front of
// the rest. complete reports whether that was the whole body.
func peekBody(r *http.Request, limit int64) (data []byte, complete bool) {
	orig := r.Body
	data, err := io.ReadAll(io.LimitReader(orig, limit+1))
	rest := io.Reader(orig)
	if err != nil {
		rest = io.MultiReader(&errReader{err}, orig)
	}
	r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(data), rest), closer: orig}
	return data, err == nil && int64(len(data)) <= limit
}

// replayBody is a request body that reads back what was peeked, then the
// rest, and closes the original.
type replayBody struct {
	io.Reader
	closer io.Closer
}

func (b *replayBody) Close() error { return b.closer.Close() }

// errReader returns the read error met while peeking, so that the
// upstream side sees the same failure the peek did.
type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// jsonString returns the string at a dotted member path of a JSON object.
func jsonString(body []byte, path string) string {
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return ""
	}
	for _, part := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		if v, ok = obj[part]; !ok {
			return ""
		}
	}
	s, _ := v.(string)
	return s
}

// clip trims space and cuts a user name to maxUsername bytes on a rune
// boundary.
func clip(name string) string {
	name = strings.TrimSpace(name)
	if len(name) <= maxUsername {
		return name
	}
	name = name[:maxUsername]
	for len(name) > 0 && !utf8.ValidString(name) {
		name = name[:len(name)-1]
	}
	return name
}

// normalizeUser is the form of a user name in keys: case-folded, because
// directory logins (Active Directory, UCCE agents) ignore case and an
// attacker must not get N more guesses per spelling.
func normalizeUser(name string) string { return strings.ToLower(name) }
