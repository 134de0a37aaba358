package modules

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// The check tests run the real check script under bash against listeners
// of the test's own on loopback (no root needed), make a host's probes
// from a plan and its facts, and read recorded outputs of the script from
// the lab's Pis (testdata/check/, one file per case: what a Pi printed).
//
//	go test ./modules -run Check
//	go test ./modules -run '^$' -fuzz FuzzParseProbes -fuzztime 60s

// udpServer answers each datagram on loopback with what answer makes of
// it, if anything.
func udpServer(t *testing.T, answer func(req []byte) []byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if a := answer(buf[:n]); a != nil {
				c.WriteTo(a, from)
			}
		}
	}()
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// ntpServe answers a 48-byte client request like an NTP server at
// stratum 2; anything else, with "ntp", as the lab's banner does.
func ntpServe(req []byte) []byte {
	if len(req) != 48 || req[0]&7 != 3 {
		return []byte("ntp\n")
	}
	a := make([]byte, 48)
	a[0], a[1] = 4<<3|4, 2
	binary.BigEndian.PutUint32(a[40:], uint32(time.Now().Unix()+2208988800))
	return a
}

func dnsServe(req []byte) []byte {
	if len(req) < 12 {
		return nil
	}
	a := slices.Clone(req)
	a[2] |= 0x80
	a[3] = 0x83 // NXDOMAIN, recursion available
	return a
}

var recordCheck = flag.String("record-check", "", "write the check script's output of TestCheckScript to `FILE`")

func TestCheckScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("the check script needs bash")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	open := netip.MustParseAddrPort(l.Addr().String())
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := netip.MustParseAddrPort(l2.Addr().String())
	l2.Close()
	ntp := udpServer(t, ntpServe)
	banner := udpServer(t, func([]byte) []byte { return []byte("ntp\n") })
	silent := udpServer(t, func([]byte) []byte { return nil })
	dns := udpServer(t, dnsServe)
	lo := netip.MustParseAddr("127.0.0.1")

	c := &Check{Limit: time.Second}
	cases := []struct {
		name string
		p    Probe
		seen string // a prefix of what the finding says
		ok   bool
	}{
		{"tcp connects", Probe{Kind: ProbeTCP, Addr: lo, Port: open.Port(), Expect: ExpectReachable}, "connected", true},
		{"tcp refused, expected reachable", Probe{Kind: ProbeTCP, Addr: lo, Port: closed.Port(), Expect: ExpectReachable}, "refused", false},
		{"tcp refused, expected blocked", Probe{Kind: ProbeTCP, Addr: lo, Port: closed.Port(), Expect: ExpectBlocked}, "refused", true},
		{"loopback refused", Probe{Kind: ProbeTCP, Addr: lo, Port: closed.Port(), Expect: ExpectLoopback}, "refused", true},
		{"tcp connects, expected blocked", Probe{Kind: ProbeTCP, Addr: lo, Port: open.Port(), Expect: ExpectBlocked}, "connected", false},
		{"ntp answers", Probe{Kind: ProbeNTP, Addr: lo, Port: ntp.Port(), Expect: ExpectReachable, query: ntpQuery()}, "NTP answer, stratum 2", true},
		{"a banner is no ntp", Probe{Kind: ProbeNTP, Addr: lo, Port: banner.Port(), Expect: ExpectReachable, query: ntpQuery()}, "answer, but 4 bytes", false},
		{"ntp silent, expected reachable", Probe{Kind: ProbeNTP, Addr: lo, Port: silent.Port(), Expect: ExpectReachable, query: ntpQuery()}, "no answer within 1s", false},
		{"ntp silent, expected blocked", Probe{Kind: ProbeNTP, Addr: lo, Port: silent.Port(), Expect: ExpectBlocked, query: ntpQuery()}, "no answer", true},
		{"ntp port closed", Probe{Kind: ProbeNTP, Addr: lo, Port: closed.Port(), Expect: ExpectReachable, query: ntpQuery()}, "refused", false},
		{"dns answers", Probe{Kind: ProbeDNS, Addr: lo, Port: dns.Port(), Expect: ExpectReachable, query: dnsQuery(0x7001, "api.lab")}, "DNS answer, NXDOMAIN, 0 record(s)", true},
	}
	for i, tc := range cases {
		tc.p.ID = i + 1
		c.Probes = append(c.Probes, tc.p)
	}
	start := time.Now()
	out, err := exec.Command("bash", "-c", c.Script(Paths{})).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("check script: %v\n%s", err, out)
	}
	if *recordCheck != "" {
		os.WriteFile(*recordCheck, out, 0o644)
	}
	findings, err := c.Judge(out)
	if err != nil {
		t.Fatalf("Judge: %v\n%s", err, out)
	}
	if len(findings) != len(c.Probes) {
		t.Fatalf("got %d findings, want %d\n%s", len(findings), len(c.Probes), out)
	}
	// The probes run at once: the silent ones take their limits together
	// (a figure, not an assertion: the machine may be busy).
	t.Logf("the check script took %v for %d probes of a 1s limit, three of them silent", took, len(c.Probes))
	for i, fd := range findings {
		if tc := cases[i]; !strings.HasPrefix(fd.Seen, tc.seen) || fd.OK != tc.ok {
			t.Errorf("%s: seen %q ok %v, want %q ok %v", tc.name, fd.Seen, fd.OK, tc.seen, tc.ok)
		}
	}
}

// TestCheckPing: ping to loopback replies where ping is installed, and is
// said to be missing where it is not; it is never a failure of the rules.
func TestCheckPing(t *testing.T) {
	c := &Check{Limit: time.Second, Probes: []Probe{{ID: 1, Kind: ProbePing, Addr: netip.MustParseAddr("127.0.0.1"), Expect: ExpectReachable}}}
	out, err := exec.Command("bash", "-c", c.Script(Paths{})).CombinedOutput()
	if err != nil {
		t.Fatalf("check script: %v\n%s", err, out)
	}
	findings, err := c.Judge(out)
	if err != nil {
		t.Fatal(err)
	}
	fd := findings[0]
	if _, err := exec.LookPath("ping"); err != nil {
		if !fd.Skipped || fd.Seen != "not probed: ping is not installed on the host" {
			t.Errorf("without ping: %+v, want skipped, saying ping is missing", fd)
		}
		return
	}
	// Unprivileged ping may be refused by the machine's ping_group_range.
	if !fd.OK && !strings.Contains(string(out), "error") {
		t.Errorf("ping 127.0.0.1: %+v", fd)
	}
}

func TestNewCheck(t *testing.T) {
	dir := t.TempDir()
	site := `
allowlist "kiosk" {
  inbound {
    from  = ["198.18.0.1"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["api.lab", "198.18.9.0/24"]
    ports = ["tcp/443", "udp/123", "udp/5000"]
  }
  outbound {
    to = ["198.18.1.99"]
  }
  expect_blocked {
    to    = ["blocked.lab"]
    ports = ["tcp/443"]
  }
  expect_blocked {
    to = ["198.18.1.66"]
  }
  expect_blocked {
    to = ["gone.lab"]
    ports = ["tcp/443"]
  }
  ping = true
}
host "pi-01" {
  address    = "198.18.2.1"
  allowlists = ["kiosk"]
}
`
	if err := os.WriteFile(filepath.Join(dir, "site.hcl"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := plans.Load(dir, plans.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	h := p.Host("pi-01")
	if got, want := CheckRequest(h).Names, []string{"api.lab", "blocked.lab", "gone.lab"}; !slices.Equal(got, want) {
		t.Errorf("CheckRequest names = %q, want %q", got, want)
	}
	live := "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n-A OUTPUT -o lo -j ACCEPT\nCOMMIT\n"
	f := &Facts{
		SSHPort:   22,
		Resolvers: []netip.Addr{netip.MustParseAddr("198.18.1.53")},
		Names: map[string]firewall.Resolution{
			"api.lab":     {Name: "api.lab", Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("fd70:6977:616c::1:11")}},
			"blocked.lab": {Name: "blocked.lab", Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.12")}},
		},
		NameErrors:    map[string]string{"gone.lab": "does not resolve on the host (getent ahosts 2)"},
		LiveText:      map[firewall.Family]string{firewall.IPv4: live, firewall.IPv6: live},
		PersistedText: map[firewall.Family]string{firewall.IPv4: live},
	}
	c, err := NewCheck(h, f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fd := range c.Facts {
		got = append(got, fmt.Sprintf("%s | %s | %s | ok=%v skipped=%v", fd.What, fd.From, fd.Seen, fd.OK, fd.Skipped))
	}
	for _, pr := range c.Probes {
		got = append(got, fmt.Sprintf("%d %s | %s | %s", pr.ID, pr.What(), pr.From, pr.Expect))
	}
	want := []string{
		"resolve api.lab | names | 198.18.1.11, fd70:6977:616c::1:11 | ok=true skipped=false",
		"resolve blocked.lab | names | 198.18.1.12 | ok=true skipped=false",
		"resolve gone.lab | names | not probed: does not resolve on the host (getent ahosts 2) | ok=false skipped=true",
		"udp/5000 api.lab | kiosk outbound 1 | not probed: no probe speaks udp/5000 | ok=false skipped=true",
		"198.18.9.0/24 | kiosk outbound 1 | not probed: a network, not an address | ok=false skipped=true",
		"persisted IPv4 | rules.v4 | same | ok=true skipped=false",
		"persisted IPv6 | rules.v6 | rules.v6 is missing: a reboot loads no rules | ok=false skipped=false",
		"1 tcp/22 127.0.0.1 | loopback | open or refused",
		"2 tcp/22 ::1 | loopback | open or refused",
		"3 dns udp/53 198.18.1.53 | dns | reachable",
		"4 tcp/443 api.lab (198.18.1.11) | kiosk outbound 1 | reachable",
		"5 ntp udp/123 api.lab (198.18.1.11) | kiosk outbound 1 | reachable",
		"6 tcp/443 api.lab (fd70:6977:616c::1:11) | kiosk outbound 1 | reachable",
		"7 ntp udp/123 api.lab (fd70:6977:616c::1:11) | kiosk outbound 1 | reachable",
		"8 ping 198.18.1.99 | kiosk outbound 2 | reachable",
		"9 ping api.lab (198.18.1.11) | kiosk outbound 1, ping | reachable",
		"10 ping api.lab (fd70:6977:616c::1:11) | kiosk outbound 1, ping | reachable",
		"11 tcp/443 blocked.lab (198.18.1.12) | kiosk expect_blocked 1 | blocked",
		"12 ping 198.18.1.66 | kiosk expect_blocked 2 | blocked",
		"13 tcp/443 198.18.1.66 | kiosk expect_blocked 2 | blocked",
		"14 tcp/80 198.18.1.66 | kiosk expect_blocked 2 | blocked",
	}
	if !slices.Equal(got, want) {
		t.Errorf("check:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestParseProbesRecorded reads what the check script printed on lab Pis.
func TestParseProbesRecorded(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "check", "*.txt"))
	if len(paths) == 0 {
		t.Fatal("no recorded outputs in testdata/check: the glob matched nothing")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := ParseProbes(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				t.Fatal("no probe in a recorded output")
			}
			again, err := ParseProbes(FormatProbes(rs))
			if err != nil || !slices.Equal(again, rs) {
				t.Errorf("FormatProbes does not read back: %v\n%v\n%v", err, again, rs)
			}
		})
	}
}

func TestParseProbesCut(t *testing.T) {
	for _, tc := range []struct{ name, out string }{
		{"no end", "probe 1 open 3 \n"},
		{"unknown result", "probe 1 maybe 3 \nend\n"},
		{"bad id", "probe x open 3 \nend\n"},
		{"negative time", "probe 1 open -3 \nend\n"},
		{"too few fields", "probe 1 open\nend\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseProbes([]byte(tc.out)); err == nil {
				t.Errorf("ParseProbes(%q): no error", tc.out)
			}
		})
	}
}

func FuzzParseProbes(f *testing.F) {
	requireSeeds(f, "FuzzParseProbes", 2)
	f.Fuzz(func(t *testing.T, out []byte) {
		rs, err := ParseProbes(out)
		if err != nil {
			return
		}
		again, err := ParseProbes(FormatProbes(rs))
		if err != nil {
			t.Fatalf("FormatProbes(%v) does not parse: %v", rs, err)
		}
		if !slices.Equal(again, rs) {
			t.Errorf("round trip: %v, want %v", again, rs)
		}
		c := &Check{}
		for _, r := range rs {
			c.Probes = append(c.Probes, Probe{ID: r.ID, Kind: ProbeNTP, Expect: ExpectReachable, query: ntpQuery()})
		}
		if _, err := c.Judge(out); err != nil {
			t.Errorf("Judge: %v, where ParseProbes read it", err)
		}
	})
}

func FuzzCheckAnswers(f *testing.F) {
	f.Add("2402000000000000", true)
	f.Add(strings.Repeat("00", 48), false)
	f.Fuzz(func(t *testing.T, hexText string, ntp bool) {
		if ntp {
			ntpAnswer(hexText)
		} else {
			dnsAnswer(hexText, dnsQuery(1, "api.lab"))
		}
	})
}
