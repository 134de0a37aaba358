//go:build linux

package lab

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The services namespace holds what a kiosk Pi talks to: a dashboard and an
// API on tcp/443, a host it must never reach, a time service on udp/123 (an
// NTP server's answer to an NTP request, a banner to anything else), and
// the DNS server every Pi resolves through (dnsmasq, from Debian).

// dnsRecords are the lab's names: every service, the name server, the
// controller, the intruder and every Pi, each with an A and an AAAA record,
// and the CNAME chain that leads dashboard.lab to edge.cdn.lab. The
// services' names are in a hosts file of their own (servicesHosts), which
// dnsmasq reads again on SIGHUP: a test can move a name while the lab runs.
func dnsRecords(pis int) (hosts []string, cnameArgs []string) {
	add := func(name string, a Addrs) { hosts = append(hosts, fmt.Sprintf("%s,%s,%s", name, a.V4, a.V6)) }
	add("ns.lab", DNS)
	add("admin.lab", Controller)
	add("intruder.lab", Intruder)
	for i := 1; i <= pis; i++ {
		add(PiName(i)+".lab", PiAddrs(i))
	}
	for i := 0; i+1 < len(cnames); i++ {
		cnameArgs = append(cnameArgs, cnames[i]+","+cnames[i+1])
	}
	return hosts, cnameArgs
}

// servicesHosts is the hosts file of the services' names, as dnsmasq
// reads it: each name with its addresses, one line each.
func servicesHosts(records map[string][]netip.Addr) string {
	var b strings.Builder
	for _, s := range Services {
		for _, a := range records[s.Name] {
			fmt.Fprintf(&b, "%s %s\n", a, s.Name)
		}
	}
	return b.String()
}

// defaultRecords are the services' names as the lab starts: each at its
// own addresses.
func defaultRecords() map[string][]netip.Addr {
	m := map[string][]netip.Addr{}
	for _, s := range Services {
		m[s.Name] = []netip.Addr{s.Addrs.V4, s.Addrs.V6}
	}
	return m
}

// SetDNS makes the lab's DNS server answer name (a service's) with addrs
// from now on, as a CDN moving a name would: the hosts file is written
// again and dnsmasq, sent SIGHUP, reads it and forgets what it cached.
func (l *Lab) SetDNS(name string, addrs ...netip.Addr) error {
	recs := defaultRecords()
	if b, err := os.ReadFile(l.Dir + "/dns.json"); err == nil {
		if err := json.Unmarshal(b, &recs); err != nil {
			return err
		}
	}
	if _, ok := recs[name]; !ok {
		return fmt.Errorf("lab dns: %s is not a service's name", name)
	}
	for _, a := range addrs {
		if !inLab(a) {
			return fmt.Errorf("lab dns: %s is outside the lab", a)
		}
	}
	recs[name] = addrs
	b, _ := json.Marshal(recs)
	if err := os.WriteFile(l.Dir+"/dns.json", b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(l.Dir+"/dns.hosts", []byte(servicesHosts(recs)), 0o644); err != nil {
		return err
	}
	return l.signalDNS(unix.SIGHUP)
}

// PauseDNS stops the lab's DNS server answering (SIGSTOP: queries time out,
// as in an outage), or lets it answer again.
func (l *Lab) PauseDNS(paused bool) error {
	if paused {
		return l.signalDNS(unix.SIGSTOP)
	}
	return l.signalDNS(unix.SIGCONT)
}

func (l *Lab) signalDNS(sig unix.Signal) error {
	if len(l.Services) == 0 || !l.Services[0].alive() {
		return errors.New("lab dns: dnsmasq is not running")
	}
	return unix.Kill(l.Services[0].Pid, sig)
}

// dnsmasqArgs runs dnsmasq in the foreground as the lab's only name server:
// authoritative for .lab, no upstream, nothing read from the machine's
// files; the services' names from hostsPath, read again on SIGHUP. It
// stays root: it reads that file after it would have dropped privileges,
// and the lab's directory may be private (a test's temporary one).
func dnsmasqArgs(pis int, logPath, hostsPath string) []string {
	args := []string{
		"--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
		"--no-resolv", "--no-hosts", "--addn-hosts=" + hostsPath, "--no-poll", "--local=/lab/", "--domain-needed",
		"--bind-interfaces", "--listen-address=" + DNS.V4.String(), "--listen-address=" + DNS.V6.String(),
		"--user=root", "--log-queries", "--log-facility=" + logPath,
	}
	hosts, cnames := dnsRecords(pis)
	for _, h := range hosts {
		args = append(args, "--host-record="+h)
	}
	for _, c := range cnames {
		args = append(args, "--cname="+c)
	}
	return args
}

// serviceAddrs are every address the services namespace answers on.
func serviceAddrs() []netip.Addr {
	addrs := []netip.Addr{DNS.V4, DNS.V6}
	for _, s := range Services {
		addrs = append(addrs, s.Addrs.V4, s.Addrs.V6)
	}
	return addrs
}

// startServices starts dnsmasq and the listeners in the services namespace.
func startServices(ctx context.Context, pis int, dir string) ([]Proc, error) {
	exe, err := self()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(dir+"/services.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	if err := os.WriteFile(dir+"/dns.hosts", []byte(servicesHosts(defaultRecords())), 0o644); err != nil {
		return nil, err
	}
	dnsmasq := exec.Command("ip", append([]string{"netns", "exec", svcNetns, "dnsmasq"}, dnsmasqArgs(pis, dir+"/dnsmasq.log", dir+"/dns.hosts")...)...)
	listeners := exec.Command("ip", "netns", "exec", svcNetns, exe)
	listeners.Env = []string{roleEnv + "=services"}
	var procs []Proc
	for _, cmd := range []*exec.Cmd{dnsmasq, listeners} {
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return procs, fmt.Errorf("starting %s in %s: %w", cmd.Args[4], svcNetns, err)
		}
		go cmd.Wait()
		p, err := procOf(cmd.Process.Pid)
		if err != nil {
			return procs, fmt.Errorf("starting %s in %s: it exited at once (see %s/services.log)", cmd.Args[4], svcNetns, dir)
		}
		procs = append(procs, p)
	}
	return procs, waitServices(ctx)
}

// waitServices waits until every service answers from the controller.
func waitServices(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r := resolverAt(DNS.V4)
	for {
		err := func() error {
			for _, s := range Services {
				if _, err := Probe(ctx, s.Proto, netip.AddrPortFrom(s.Addrs.V4, uint16(s.Port))); err != nil {
					return err
				}
			}
			_, err := r.LookupNetIP(ctx, "ip4", "api.lab")
			return err
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the lab's services did not come up: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// resolverAt asks only the name server at a.
func resolverAt(a netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, netip.AddrPortFrom(a, 53).String())
	}}
}

// serveServices is the listeners' process inside the services namespace.
func serveServices([]string) error {
	errs := make(chan error, 2*len(Services))
	for _, s := range Services {
		for _, a := range []netip.Addr{s.Addrs.V4, s.Addrs.V6} {
			ap := netip.AddrPortFrom(a, uint16(s.Port))
			switch s.Proto {
			case "tcp":
				l, err := net.Listen("tcp", ap.String())
				if err != nil {
					return err
				}
				go func() { errs <- serveTCP(l, s.Banner) }()
			case "udp":
				c, err := net.ListenPacket("udp", ap.String())
				if err != nil {
					return err
				}
				go func() { errs <- serveUDP(c, s.Banner) }()
			}
		}
	}
	return <-errs
}

func serveTCP(l net.Listener, banner string) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(banner + "\n"))
			c.Close()
		}()
	}
}

func serveUDP(c net.PacketConn, banner string) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if banner == "ntp" {
			if a := ntpAnswer(buf[:n], time.Now()); a != nil {
				c.WriteTo(a, from)
				continue
			}
		}
		c.WriteTo([]byte(banner+"\n"), from)
	}
}

// ntpAnswer is what ntp.lab answers an NTP client's request (RFC 5905:
// 48 bytes or more, mode 3): a server's answer at stratum 2, now as its
// receive and transmit times, the request's transmit time as the origin.
// Anything else is not an NTP request (nil), and gets the banner.
func ntpAnswer(req []byte, now time.Time) []byte {
	if len(req) < 48 || req[0]&7 != 3 {
		return nil
	}
	a := make([]byte, 48)
	a[0] = 0<<6 | (req[0]>>3&7)<<3 | 4 // no leap warning, the client's version, mode 4
	a[1], a[2], a[3] = 2, req[2], 0xec // stratum 2, the client's poll, precision 2^-20
	copy(a[12:16], "LAB\x00")          // the reference: the lab
	ts := func(b []byte, t time.Time) {
		binary.BigEndian.PutUint32(b, uint32(t.Unix()+2208988800))
		binary.BigEndian.PutUint32(b[4:], uint32(uint64(t.Nanosecond())<<32/1e9))
	}
	ts(a[16:24], now.Add(-time.Minute)) // reference time
	copy(a[24:32], req[40:48])          // origin: the client's transmit time
	ts(a[32:40], now)                   // receive
	ts(a[40:48], now)                   // transmit
	return a
}

// Probe talks to a lab service the way a client would and returns its
// banner: for tcp it connects and reads a line, for udp it sends a datagram
// and reads the reply. A firewall that drops the traffic shows as a timeout
// (ctx's deadline, or 2 s), one that rejects it as a refusal.
func Probe(ctx context.Context, proto string, to netip.AddrPort) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, proto, to.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if proto == "udp" {
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if n == 0 && err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if line == "" {
		return "", errors.New("empty answer")
	}
	return line, nil
}
