//go:build linux

package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

var update = flag.Bool("update", false, "rewrite examples/lab/site.hcl from the lab's generator")

func TestSitePlanIsTheExample(t *testing.T) {
	got := sitePlan(DefaultDir, 3, false)
	if *update {
		if err := os.WriteFile("site.hcl", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("site.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("examples/lab/site.hcl differs from what piwall-lab up writes (go test ./examples/lab -run SitePlan -update rewrites it)\ngot:\n%s", got)
	}
	if _, diags := hclsyntax.ParseConfig(want, "site.hcl", hcl.InitialPos); diags.HasErrors() {
		t.Errorf("site.hcl does not parse: %s", diags)
	}
	if f := hclwrite.Format(want); string(f) != string(want) {
		t.Errorf("site.hcl is not in canonical HCL formatting; formatted:\n%s", f)
	}
}

func TestAddressPlan(t *testing.T) {
	seen := map[netip.Addr]string{}
	claim := func(who string, a netip.Addr) {
		t.Helper()
		if !inLab(a) {
			t.Errorf("%s: %s is outside the lab's ranges", who, a)
		}
		if other, ok := seen[a]; ok {
			t.Errorf("%s: %s is also %s's", who, a, other)
		}
		seen[a] = who
	}
	claim("controller", Controller.V4)
	claim("controller", Controller.V6)
	claim("intruder", Intruder.V4)
	claim("intruder", Intruder.V6)
	for _, a := range serviceAddrs() {
		claim("services", a)
	}
	for i := 1; i <= MaxPis; i++ {
		claim(PiName(i), PiAddrs(i).V4)
		claim(PiName(i), PiAddrs(i).V6)
		if n := Prefix + PiName(i); len(n) > 15 {
			t.Errorf("link name %q is longer than the kernel's 15 characters", n)
		}
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       stat
		wantErr    bool
	}{
		{"plain", "42 (sshd) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 100 1", stat{'S', 12345}, false},
		{"name with spaces and parens", "7 (a) b (c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", stat{'Z', 99}, false},
		{"truncated", "7 (x) S 1 2", stat{}, true},
		{"no name", "7 x S", stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.line)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStat(%q) = %+v, %v; want %+v, error %v", tt.line, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestLab brings up a lab of three Pis and checks what every later test
// stands on: reachable Pis with checked host keys, no iptables until apt
// installs it offline, firewalls that stay in their own Pi, services and
// names that answer, and a down that leaves nothing behind.
func TestLab(t *testing.T) {
	start := time.Now()
	l := Start(t, Config{Pis: 3, Dir: filepath.Join(t.TempDir(), "lab")})
	t.Logf("lab up: %d Pis in %.1fs", len(l.Pis), time.Since(start).Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pi1, pi2 := l.Pis[0], l.Pis[1]

	t.Run("ssh into every Pi with host keys checked", func(t *testing.T) {
		for _, p := range l.Pis {
			out, err := l.Run(ctx, p, "hostname; id -un")
			if err != nil {
				t.Fatal(err)
			}
			if want := p.Name + "\npi\n"; out != want {
				t.Errorf("%s: got %q, want %q", p.Name, out, want)
			}
		}
		if _, err := exec.LookPath("ssh"); err == nil {
			out, err := exec.CommandContext(ctx, "ssh", "-F", l.SSHConfig(), "-o", "BatchMode=yes", pi2.Name, "hostname").CombinedOutput()
			if err != nil || string(out) != pi2.Name+"\n" {
				t.Errorf("OpenSSH with the lab's ssh_config: %v: %s", err, out)
			}
		}
	})

	t.Run("a wrong host key is refused", func(t *testing.T) {
		// known_hosts that gives pi-01's address pi-02's key.
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pi2.HostKey))
		if err != nil {
			t.Fatal(err)
		}
		bad := &Lab{Dir: t.TempDir()}
		if err := os.WriteFile(bad.KnownHosts(), []byte(knownhosts.Line([]string{pi1.Addrs.V4.String()}, k)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		key, _ := os.ReadFile(l.Key())
		os.WriteFile(bad.Key(), key, 0o600)
		_, err = bad.Run(ctx, pi1, "true")
		var keyErr *knownhosts.KeyError
		if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
			t.Errorf("connecting with a wrong host key: got %v, want a knownhosts.KeyError naming the expected key", err)
		}
	})

	t.Run("every Pi has its own host key", func(t *testing.T) {
		keys := map[string]string{}
		for _, p := range l.Pis {
			if other, ok := keys[p.HostKey]; ok {
				t.Errorf("%s has the same host key as %s", p.Name, other)
			}
			keys[p.HostKey] = p.Name
		}
	})

	t.Run("a terminal works", func(t *testing.T) {
		c, err := l.Dial(ctx, pi1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		out, err := s.Output("tty")
		if err != nil || !strings.HasPrefix(string(out), "/dev/pts/") {
			t.Errorf("tty on a pty: got %q, %v; want /dev/pts/N", out, err)
		}
	})

	t.Run("no route out of the lab", func(t *testing.T) {
		for _, ns := range []string{pi1.Netns, svcNetns, intrNetns} {
			out, err := exec.CommandContext(ctx, "ip", "-n", ns, "route", "show", "default").CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("%s: default route: got %q, %v; want none", ns, out, err)
			}
			out, err = exec.CommandContext(ctx, "ip", "-n", ns, "-6", "route", "show", "default").CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("%s: IPv6 default route: got %q, %v; want none", ns, out, err)
			}
		}
	})

	t.Run("services answer from a Pi", func(t *testing.T) {
		for _, s := range Services {
			for _, a := range []netip.Addr{s.Addrs.V4, s.Addrs.V6} {
				got, err := ProbeFrom(ctx, pi1.Netns, s.Proto, netip.AddrPortFrom(a, uint16(s.Port)))
				if err != nil || got != s.Banner {
					t.Errorf("%s/%d at %s: got %q, %v; want %q", s.Proto, s.Port, a, got, err, s.Banner)
				}
			}
		}
		// And with the Pi's own tools, by name, through its own resolver.
		out, err := l.Run(ctx, pi1, `for h in dashboard.lab api.lab blocked.lab; do timeout 3 bash -c "exec 3<>/dev/tcp/$h/443 && head -n1 <&3"; done
timeout 3 bash -c 'exec 3<>/dev/udp/ntp.lab/123 && echo time? >&3 && head -n1 <&3'`)
		if want := "dashboard\napi\nblocked\nntp\n"; err != nil || out != want {
			t.Errorf("from pi-01's shell: got %q, %v; want %q", out, err, want)
		}
	})

	t.Run("lab names resolve on a Pi", func(t *testing.T) {
		for _, tt := range []struct{ qtype, addr string }{{"A", "198.18.1.10"}, {"AAAA", "fd70:6977:616c::1:10"}} {
			got, err := LookupFrom(ctx, pi1.Netns, "dashboard.lab", tt.qtype)
			want := []Record{
				{"dashboard.lab", "CNAME", "dashboard.cdn.lab"},
				{"dashboard.cdn.lab", "CNAME", "edge.cdn.lab"},
				{"edge.cdn.lab", tt.qtype, tt.addr},
			}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("dashboard.lab %s: got %v, %v; want %v", tt.qtype, got, err, want)
			}
		}
		out, err := l.Run(ctx, pi1, "getent ahosts dashboard.lab; getent ahostsv4 pi-02.lab; getent ahostsv6 api.lab")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"STREAM edge.cdn.lab", "fd70:6977:616c::1:10", "198.18.1.10", "198.18.2.2", "fd70:6977:616c::1:11"} {
			if !strings.Contains(out, want) {
				t.Errorf("getent on pi-01: no %q in\n%s", want, out)
			}
		}
		if _, err := l.Run(ctx, pi1, "getent hosts nowhere.lab"); err == nil {
			t.Errorf("getent hosts nowhere.lab: succeeded, want no such name")
		}
	})

	t.Run("no iptables until apt installs it offline", func(t *testing.T) {
		for _, p := range l.Pis {
			_, err := l.Run(ctx, p, "sudo -n iptables -S")
			if err == nil || !strings.Contains(err.Error(), "iptables: command not found") {
				t.Fatalf("%s: sudo -n iptables -S on a fresh Pi: got %v, want command not found", p.Name, err)
			}
		}
		for _, p := range []Pi{pi1, pi2} {
			if _, err := l.Run(ctx, p, installIptables); err != nil {
				t.Fatalf("%s: offline install: %v", p.Name, err)
			}
			out, err := l.Run(ctx, p, "sudo -n iptables --version; test -x /usr/sbin/netfilter-persistent && echo persistent")
			if err != nil || !strings.Contains(out, "nf_tables") || !strings.Contains(out, "persistent") {
				t.Errorf("%s after install: got %q, %v", p.Name, out, err)
			}
		}
		// Each Pi has its own root: the third is still fresh.
		if _, err := l.Run(ctx, l.Pis[2], "test -e /usr/sbin/iptables"); err == nil {
			t.Errorf("%s has iptables after it was installed on other Pis", l.Pis[2].Name)
		}
	})

	t.Run("rules set in one Pi stay in that Pi", func(t *testing.T) {
		if err := l.ProveOwnNetns(ctx, pi1); err != nil {
			t.Fatal(err)
		}
		const marker = "piwall-lab-isolation-check"
		api := netip.AddrPortFrom(Services[1].Addrs.V4, 443)
		if _, err := l.Run(ctx, pi1, "sudo -n iptables -A OUTPUT -d "+api.Addr().String()+" -m comment --comment "+marker+" -j DROP"); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Run(ctx, pi1, "sudo -n iptables-save"); err != nil || !strings.Contains(out, marker) {
			t.Fatalf("pi-01's rules: got %q, %v; want the marker rule", out, err)
		}
		if _, err := ProbeFrom(ctx, pi1.Netns, "tcp", api); err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("pi-01 to api with a DROP rule: got %v, want a timeout", err)
		}
		if got, err := ProbeFrom(ctx, pi2.Netns, "tcp", api); err != nil || got != "api" {
			t.Errorf("pi-02 to api: got %q, %v; want api (pi-01's rule leaked?)", got, err)
		}
		if got, err := Probe(ctx, "tcp", api); err != nil || got != "api" {
			t.Errorf("controller to api: got %q, %v; want api", got, err)
		}
		if out, err := l.Run(ctx, pi2, "sudo -n iptables-save"); err != nil || strings.Contains(out, marker) {
			t.Errorf("pi-02's rules: got %q, %v; want no marker", out, err)
		}
		// The machine's own tables are only read, never written.
		save, err := exec.LookPath("iptables-save")
		if err != nil {
			t.Fatalf("this test reads the machine's own rules with iptables-save (hint: apt-get install -y iptables): %v", err)
		}
		if out, err := exec.CommandContext(ctx, save).CombinedOutput(); err != nil || strings.Contains(string(out), marker) {
			t.Errorf("the machine's own rules: got %q, %v; want no marker", out, err)
		}
	})

	t.Run("the intruder reaches the Pis while no firewall stops it", func(t *testing.T) {
		got, err := ProbeFrom(ctx, intrNetns, "tcp", netip.AddrPortFrom(pi2.Addrs.V4, 22))
		if err != nil || !strings.HasPrefix(got, "SSH-2.0-") {
			t.Errorf("intruder to pi-02's sshd: got %q, %v", got, err)
		}
	})

	t.Run("up clears a lab left behind", func(t *testing.T) {
		// As after a crash: the lab's description is lost, its Pis run on.
		os.Remove(filepath.Join(l.Dir, "lab.json"))
		again, err := Up(ctx, Config{Pis: 2, Dir: l.Dir, Log: testLog{t}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Pis {
			if p.Init.alive() {
				t.Errorf("%s of the old lab still runs (pid %d)", p.Name, p.Init.Pid)
			}
		}
		if names, _ := labNetns(ctx); len(names) != 4 {
			t.Errorf("namespaces after up of 2 Pis: got %v, want the services', the intruder's and 2 Pis'", names)
		}
		if out, err := again.Run(ctx, again.Pis[1], "hostname"); err != nil || out != "pi-02\n" {
			t.Errorf("pi-02 of the new lab: got %q, %v", out, err)
		}
		*l = *again
	})

	t.Run("down leaves nothing", func(t *testing.T) {
		start := time.Now()
		if err := Down(ctx, l.Dir); err != nil {
			t.Fatal(err)
		}
		t.Logf("lab down in %.1fs", time.Since(start).Seconds())
		if names, err := labNetns(ctx); err != nil || len(names) > 0 {
			t.Errorf("namespaces left: %v, %v", names, err)
		}
		if links, err := labLinks(ctx); err != nil || len(links) > 0 {
			t.Errorf("links left: %v, %v", links, err)
		}
		for _, p := range append(l.Services, l.Pis[0].Init, l.Pis[1].Init) {
			if p.alive() {
				t.Errorf("process %d still runs", p.Pid)
			}
		}
		if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
			t.Errorf("state directory %s: %v, want it gone", l.Dir, err)
		}
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), l.Dir) || strings.Contains(string(b), "piwall-lab") {
			t.Errorf("mounts of the lab left:\n%s", b)
		}
	})
}

// installIptables is the offline install a piwall apply will make.
const installIptables = `set -e
sudo -n apt-get update -qq
printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' 'iptables-persistent iptables-persistent/autosave_v6 boolean false' | sudo -n debconf-set-selections
sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables netfilter-persistent iptables-persistent >/dev/null`

// TestLabRelayed: with an RTT, the operator's files reach each Pi through
// its relay: OpenSSH, as Ansible and the floor use it, connects with the
// host key checked under the relay's address, and the plan's hosts name
// the relays.
func TestLabRelayed(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("OpenSSH's client is not installed (apt-get install openssh-client)")
	}
	const rtt = 100 * time.Millisecond
	l := Start(t, Config{Pis: 1, Dir: filepath.Join(t.TempDir(), "lab"), RTT: rtt})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "ssh", "-F", l.SSHConfig(), "-o", "BatchMode=yes", "pi-01", "hostname").CombinedOutput()
	if err != nil || string(out) != "pi-01\n" {
		t.Fatalf("OpenSSH through the relay: %v: %s", err, out)
	}
	t.Logf("ssh pi-01 hostname through a relay of RTT %v: %.2f s", rtt, time.Since(start).Seconds())
	site, err := os.ReadFile(l.Plan())
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("address = \"127.0.0.1\"\n  port    = %d\n", RelayPort(1)); !strings.Contains(string(site), want) {
		t.Errorf("site.hcl does not reach pi-01 through its relay (%q):\n%s", want, site)
	}
}

// TestNTPAnswer: ntp.lab answers an NTP client's request as an NTP server
// does, and anything else with its banner (nil here).
func TestNTPAnswer(t *testing.T) {
	req := make([]byte, 48)
	req[0] = 4<<3 | 3
	copy(req[40:], "origin!!")
	now := time.Unix(1_800_000_000, 0)
	a := ntpAnswer(req, now)
	if len(a) != 48 || a[0]&7 != 4 || a[0]>>3&7 != 4 || a[1] != 2 || string(a[24:32]) != "origin!!" {
		t.Fatalf("answer % x: want 48 bytes, mode 4, version 4, stratum 2, the request's transmit time as the origin", a)
	}
	if secs := binary.BigEndian.Uint32(a[40:44]); int64(secs)-2208988800 != now.Unix() {
		t.Errorf("transmit time %d, want %d", int64(secs)-2208988800, now.Unix())
	}
	for _, q := range [][]byte{[]byte("hello\n"), make([]byte, 48)} {
		if a := ntpAnswer(q, now); a != nil {
			t.Errorf("ntpAnswer(% x) = % x, want nil: not an NTP request", q, a)
		}
	}
}
