//go:build linux

package lab

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echo serves on loopback, writing back what it reads; it returns its
// address.
func echo(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// relayTo starts a relay to target on loopback and returns its address.
func relayTo(t testing.TB, target string, rtt time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go Relay(ln, target, rtt)
	return ln.Addr().String()
}

// roundTrip writes msg and reads it back.
func roundTrip(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("read back %d bytes that differ from those written", len(got))
	}
}

// TestRelay: a round trip through the relay takes at least its RTT, and
// bytes come out as they went in, in order, however they were cut.
func TestRelay(t *testing.T) {
	const rtt = 80 * time.Millisecond
	start := time.Now()
	c, err := net.Dial("tcp", relayTo(t, echo(t), rtt))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first exchange waits on the TCP handshake as well: two round
	// trips; later ones, one.
	roundTrip(t, c, []byte("ping"))
	if took := time.Since(start); took < 2*rtt {
		t.Errorf("connecting and a round trip took %v through a relay of RTT %v, want two round trips at least", took, rtt)
	}
	start = time.Now()
	roundTrip(t, c, []byte("ping"))
	if took := time.Since(start); took < rtt {
		t.Errorf("a round trip took %v through a relay of RTT %v", took, rtt)
	}
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	go c.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Error("1 MiB through the relay came back changed or out of order")
	}
}

// BenchmarkRelay prints what a relay of RTT 0 costs a round trip, beside
// the same round trip without it: the relay's own share of the lab's
// latency figures.
func BenchmarkRelay(b *testing.B) {
	target := echo(b)
	for _, tc := range []struct{ name, addr string }{
		{"direct", target},
		{"relay-rtt-0", relayTo(b, target, 0)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := []byte("one SSH packet's worth: 64 bytes of data, more or less, to echo")
			b.ResetTimer()
			for range b.N {
				roundTrip(b, c, msg)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/roundtrip")
		})
	}
}
