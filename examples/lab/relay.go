//go:build linux

package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Latency on the way to the Pis. This machine's kernel has no netem
// ("Specified qdisc kind is unknown"), so a relay in user space stands in
// for a slow link: with Config.RTT set, the controller reaches each Pi's
// sshd through 127.0.0.1:RelayPort(i), and the relay forwards each
// direction of every connection after half the round-trip time, in order.
// The Pi sees the connection come from the controller's lab address, as a
// direct one would. The lab's ssh_config, known_hosts and site.hcl point at
// the relays, so piwall, OpenSSH and Ansible all go through them.

// RelayPort is the port on 127.0.0.1 where the i-th Pi (1-based) is
// reached through its relay.
func RelayPort(i int) int { return 22000 + i }

// relayChunk is the most a relay reads at once: an SSH packet or a few.
const relayChunk = 32 << 10

// startRelays starts the relay process for the Pis, in this machine's own
// network namespace (the controller's).
func startRelays(rtt time.Duration, pis []Pi, dir string) (Proc, error) {
	exe, err := self()
	if err != nil {
		return Proc{}, err
	}
	args := []string{rtt.String()}
	for i, p := range pis {
		args = append(args, fmt.Sprintf("127.0.0.1:%d=%s", RelayPort(i+1), netip.AddrPortFrom(p.Addrs.V4, 22)))
	}
	log, err := os.OpenFile(dir+"/relay.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer log.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{roleEnv + "=relay"}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("starting the relays: %w", err)
	}
	go cmd.Wait()
	// Up when every port answers.
	deadline := time.Now().Add(5 * time.Second)
	for i := range pis {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", RelayPort(i+1)), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				return Proc{}, fmt.Errorf("the relays did not come up (see %s/relay.log): %w", dir, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return procOf(cmd.Process.Pid)
}

// serveRelays is the relay process: its arguments are the round-trip time,
// then LISTEN=TARGET pairs. A target outside the lab is refused.
func serveRelays(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: RTT LISTEN=TARGET [LISTEN=TARGET]")
	}
	rtt, err := time.ParseDuration(args[0])
	if err != nil {
		return err
	}
	errs := make(chan error, len(args))
	for _, pair := range args[1:] {
		listen, target, ok := strings.Cut(pair, "=")
		to, err := netip.ParseAddrPort(target)
		if !ok || err != nil || !inLab(to.Addr()) {
			return fmt.Errorf("%q: want LISTEN=TARGET, the target in the lab", pair)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		go func() { errs <- Relay(ln, target, rtt) }()
	}
	return <-errs
}

// Relay accepts connections on ln and forwards each to target, both
// directions held back by rtt/2, until ln is closed. As over a real link,
// target accepts a connection a round trip and a half after the client's
// connect began (SYN, SYN-ACK, then the ACK that carries the client's
// first bytes): loopback's connect costs nothing, so what the client sends
// meanwhile waits, and nothing of target's reaches it before two round
// trips have passed.
func Relay(ln net.Listener, target string, rtt time.Duration) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			accepted := time.Now().Add(rtt * 3 / 2)
			up := delay(c, rtt/2)
			time.Sleep(time.Until(accepted))
			t, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer t.Close()
			done := make(chan struct{}, 2)
			go func() { forward(t, c, up); done <- struct{}{} }()
			go func() { forward(c, t, delay(t, rtt/2)); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

// chunk is what a relay read, and when it may be written on.
type chunk struct {
	data []byte
	at   time.Time
}

// delay reads src from now on, each chunk due d after it was read.
func delay(src net.Conn, d time.Duration) <-chan chunk {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, relayChunk)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	return q
}

// forward writes src's chunks from q to dst, each when it is due, in
// order; src's end closes dst for writing once every chunk is out.
func forward(dst, src net.Conn, q <-chan chunk) {
	for ch := range q {
		time.Sleep(time.Until(ch.at))
		if _, err := dst.Write(ch.data); err != nil {
			src.Close() // ends the reader
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
