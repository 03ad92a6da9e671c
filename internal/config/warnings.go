package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
)

// Warning is a loosening of a secure default. `rampart check` prints every
// one; the config still loads.
type Warning struct {
	Line int
	Key  string
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("line %d: %s: %s", w.Line, w.Key, w.Msg) }

// Warnings lists every weakened default in c.
func (c *Config) Warnings() []Warning {
	var ws []Warning
	warn := func(path []any, format string, args ...any) {
		ws = append(ws, Warning{Line: c.pos.line(path...), Key: KeyString(path...), Msg: fmt.Sprintf(format, args...)})
	}
	if c.Sandbox == "off" {
		warn(p("sandbox"), "the Landlock sandbox is off: a compromised process could read any file and reach any address the user can")
	}
	if c.Limits.MinBodyRate() == 0 {
		warn(p("limits", "body_min_rate"), "body_min_rate is 0: a request body sent a byte at a time, each just inside body_read_timeout, holds its connection for as long as the client likes (slow POST); leave the default 1KiB")
	}
	if c.TLS.SessionTickets {
		warn(p("tls", "session_tickets"), "session tickets are on: a stolen ticket key decrypts past sessions (no forward secrecy); leave them off")
	}
	if c.Admin.Listen != "off" {
		if host, _, err := net.SplitHostPort(c.Admin.Listen); err == nil {
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				warn(p("admin", "listen"), "the admin listener (metrics, bans, cache purge) is not on loopback; bind it to 127.0.0.1 or an internal interface behind a firewall")
			}
		}
	}
	for i, s := range c.Sites {
		if s.Upstream.TLS.InsecureSkipVerify {
			warn(p("sites", i, "upstream", "tls", "insecure_skip_verify"), "upstream certificates are not verified: anyone on the internal path can impersonate the upstream; set tls.ca instead")
		}
		for j, t := range s.Upstream.Targets {
			if u, err := url.Parse(t); err == nil && u.Scheme == "http" {
				if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
					warn(p("sites", i, "upstream", "targets", j), "plain http to %s: requests and credentials cross the internal network unencrypted; use https with tls.ca", u.Host)
				}
			}
		}
		if s.Headers.HSTS != nil && (*s.Headers.HSTS == "off" || *s.Headers.HSTS == "") {
			warn(p("sites", i, "headers", "hsts"), "HSTS is off: browsers may be downgraded to plain http by an active attacker")
		}
		if s.Headers.FrameOptions != nil && (*s.Headers.FrameOptions == "off" || *s.Headers.FrameOptions == "") {
			warn(p("sites", i, "headers", "frame_options"), "X-Frame-Options is off: pages can be framed (clickjacking) unless a CSP frame-ancestors is set")
		}
		if s.Headers.ContentTypeOptions != nil && *s.Headers.ContentTypeOptions != "nosniff" {
			warn(p("sites", i, "headers", "content_type_options"), "X-Content-Type-Options: nosniff is off: browsers may sniff uploads as scripts")
		}
		for j, r := range s.Routes {
			if r.Regex != "" && RegexMatchesEverything(r.Regex) {
				warn(p("sites", i, "routes", j, "regex"), "%q matches every path (even /admin/x): the allowlist is effectively off; anchor it and name the paths", r.Regex)
			}
			if r.AllowJSessionID {
				warn(p("sites", i, "routes", j, "allow_jsessionid"), "session ids in URLs leak through logs and Referer; allow them only where the application needs them")
			}
		}
	}
	return ws
}

// RegexMatchesEverything reports whether a regex route accepts paths no
// operator meant to expose: the root, an admin page and a random deep path.
func RegexMatchesEverything(expr string) bool {
	re, err := regexp.Compile(expr)
	if err != nil {
		return false
	}
	for _, probe := range []string{"/", "/admin/x", "/zq9/x7/../etc/passwd", "/WEB-INF/web.xml"} {
		if !re.MatchString(probe) {
			return false
		}
	}
	return true
}
