package protoguard

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/selfsigned"
)

// A browser's request head, as the guard checks it before net/http reads it.
var browserHead = []byte("GET /finesse/api/User/1001/Dialogs?nocache=1700000000 HTTP/1.1\r\n" +
	"Host: finesse.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
	"Accept: application/xml, text/xml, */*; q=0.01\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://finesse.example.com/desktop/container/\r\n" +
	"X-Requested-With: XMLHttpRequest\r\n" +
	"Cookie: JSESSIONID=0123456789ABCDEF0123456789ABCDEF; lang=en\r\n" +
	"Connection: keep-alive\r\n\r\n")

func BenchmarkParseHead(b *testing.B) {
	lim := &Limits{MaxHeaderBytes: 8 << 10, MaxURILength: 4 << 10}
	b.ReportAllocs()
	b.SetBytes(int64(len(browserHead)))
	for b.Loop() {
		if _, rej := parseHead(browserHead, lim); rej != nil {
			b.Fatal(rej.Reason)
		}
	}
}

// BenchmarkHandshake is one TLS 1.3 handshake (X25519, ECDSA P-256) on a
// new loopback connection, server side through the guard, client side
// crypto/tls in the same process: the figures include both ends.
func BenchmarkHandshake(b *testing.B) {
	ca, err := selfsigned.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Leaf("bench.test")
	if err != nil {
		b.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	srvConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	lim := &Limits{MaxHeaderBytes: 8 << 10, MaxURILength: 4 << 10, HandshakeTimeout: 5 * time.Second}
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c := newConn(raw, lim, func() *tls.Config { return srvConf }, nil)
				_ = c.handshake()
				_ = c.Close()
			}()
		}
	}()
	cliConf := &tls.Config{ServerName: "bench.test", InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.X25519}}
	b.ReportAllocs()
	for b.Loop() {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c := tls.Client(raw, cliConf)
		if err := c.Handshake(); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}
