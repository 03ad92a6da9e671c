package bruteforce

import (
	"net"
	"strconv"
)

// readOctetCount reads the RFC 6587 octet count ("LEN ") that frames a
// syslog message over TCP, a byte at a time so nothing after it is consumed.
func readOctetCount(c net.Conn) (int, error) {
	var digits []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			return 0, err
		}
		if b[0] == ' ' {
			return strconv.Atoi(string(digits))
		}
		digits = append(digits, b[0])
	}
}
