package bruteforce

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// facilities are the RFC 5424 facility codes an operator may name.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

const (
	severityWarning = 4
	// sdID names rampart's structured-data element. 32473 is the private
	// enterprise number reserved for documentation (RFC 5612).
	sdID          = "rampart@32473"
	syslogTimeout = time.Second
)

// sdParam is one PARAM-NAME="PARAM-VALUE" of a structured-data element.
type sdParam struct{ name, value string }

// formatRFC5424 renders one syslog message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID PARAM="VALUE"...] MSG
func formatRFC5424(t time.Time, facility, severity int, hostname, app, procID, msgID string, params []sdParam, msg string) string {
	var b strings.Builder
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(facility*8 + severity))
	b.WriteString(">1 ")
	b.WriteString(t.UTC().Format("2006-01-02T15:04:05.000000Z"))
	for _, f := range []struct {
		v   string
		max int
	}{{hostname, 255}, {app, 48}, {procID, 128}, {msgID, 32}} {
		b.WriteByte(' ')
		b.WriteString(headerField(f.v, f.max))
	}
	b.WriteByte(' ')
	if len(params) == 0 {
		b.WriteByte('-')
	} else {
		b.WriteString("[" + sdID)
		for _, p := range params {
			b.WriteByte(' ')
			b.WriteString(p.name)
			b.WriteString(`="`)
			b.WriteString(escapeSDValue(p.value))
			b.WriteByte('"')
		}
		b.WriteByte(']')
	}
	if msg != "" {
		b.WriteByte(' ')
		b.WriteString(strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, msg))
	}
	return b.String()
}

// headerField makes s a valid header field: printable ASCII without
// spaces, at most max bytes, "-" when empty.
func headerField(s string, max int) string {
	out := []byte(s)
	for i, c := range out {
		if c < 33 || c > 126 {
			out[i] = '_'
		}
	}
	if len(out) > max {
		out = out[:max]
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// escapeSDValue escapes '"', '\' and ']' as RFC 5424 section 6.3.3 requires,
// and drops control characters.
func escapeSDValue(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == ']':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// syslogSender delivers ban notices without ever holding up a request:
// each message is sent from its own goroutine with a short timeout, at
// most a few at a time; when they are all busy the message is dropped and
// counted.
type syslogSender struct {
	network, address string
	facility         int
	hostname         string
	procID           string
	inflight         chan struct{}
}

func newSyslogSender(c SyslogConfig) *syslogSender {
	host, _ := os.Hostname()
	return &syslogSender{
		network: c.Network, address: c.Address, facility: facilities[c.Facility],
		hostname: host, procID: strconv.Itoa(os.Getpid()),
		inflight: make(chan struct{}, 8),
	}
}

// notify sends a warning with the given message id and parameters.
func (s *syslogSender) notify(msgID string, params []sdParam, msg string) {
	line := formatRFC5424(time.Now(), s.facility, severityWarning, s.hostname, "rampart", s.procID, msgID, params, msg)
	select {
	case s.inflight <- struct{}{}:
	default:
		syslogErrors.Inc()
		return
	}
	go func() {
		defer func() { <-s.inflight }()
		if err := s.write(line); err != nil {
			syslogErrors.Inc()
		}
	}()
}

func (s *syslogSender) write(line string) error {
	c, err := net.DialTimeout(s.network, s.address, syslogTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(syslogTimeout))
	if s.network == "tcp" {
		// RFC 6587 octet counting: "LEN SP MSG".
		line = strconv.Itoa(len(line)) + " " + line
	}
	_, err = c.Write([]byte(line))
	return err
}
