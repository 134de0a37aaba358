package firewall

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piwall/piwall/plans"
)

// lockoutDesired compiles the one host of a plan, with the lab's names.
func lockoutDesired(t *testing.T, src string) *Desired {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := plans.Load(path, plans.Options{})
	if diags.HasErrors() {
		t.Fatalf("plan: %s", diags)
	}
	names := map[string]Resolution{
		"api.lab": {Name: "api.lab", Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("fd70:6977:616c::1:11")}},
	}
	d, err := Compile(Input{Policy: p.Hosts[0].Policy, Names: names, Resolvers: []netip.Addr{netip.MustParseAddr("198.18.1.53")}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const lockoutPlan = `
allowlist "kiosk" {
  inbound {
    from  = ["198.18.0.1", "fd70:6977:616c::1"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["api.lab"]
    ports = ["tcp/443"]
  }
}
host "pi" {
  address    = "198.18.2.1"
  allowlists = ["kiosk"]
}
`

func TestEvaluateCompiledRuleset(t *testing.T) {
	d := lockoutDesired(t, lockoutPlan)
	a := netip.MustParseAddr
	pi, admin, intruder := a("198.18.2.1"), a("198.18.0.1"), a("198.18.0.66")
	tests := []struct {
		name   string
		fam    Family
		packet Packet
		accept bool
	}{
		{"ssh from the admin", IPv4, Packet{Chain: "INPUT", Src: admin, Dst: pi, Proto: "tcp", DPort: 22, State: "NEW"}, true},
		{"ssh from the admin over IPv6", IPv6, Packet{Chain: "INPUT", Src: a("fd70:6977:616c::1"), Dst: a("fd70:6977:616c::2:1"), Proto: "tcp", DPort: 22, State: "NEW"}, true},
		{"ssh from the intruder", IPv4, Packet{Chain: "INPUT", Src: intruder, Dst: pi, Proto: "tcp", DPort: 22, State: "NEW"}, false},
		{"another port from the admin", IPv4, Packet{Chain: "INPUT", Src: admin, Dst: pi, Proto: "tcp", DPort: 23, State: "NEW"}, false},
		{"loopback in", IPv4, Packet{Chain: "INPUT", In: "lo", Src: a("127.0.0.1"), Dst: a("127.0.0.1"), Proto: "tcp", DPort: 8080, State: "NEW"}, true},
		{"loopback out", IPv6, Packet{Chain: "OUTPUT", Out: "lo", Src: a("::1"), Dst: a("::1"), Proto: "udp", DPort: 53, State: "NEW"}, true},
		{"dns to the resolver", IPv4, Packet{Chain: "OUTPUT", Src: pi, Dst: a("198.18.1.53"), Proto: "udp", DPort: 53, State: "NEW"}, true},
		{"dns to another server", IPv4, Packet{Chain: "OUTPUT", Src: pi, Dst: a("198.18.1.54"), Proto: "udp", DPort: 53, State: "NEW"}, false},
		{"replies come back", IPv4, Packet{Chain: "INPUT", Src: a("198.18.1.11"), Dst: pi, Proto: "tcp", DPort: 40000, State: "ESTABLISHED"}, true},
		{"api by name", IPv6, Packet{Chain: "OUTPUT", Src: a("fd70:6977:616c::2:1"), Dst: a("fd70:6977:616c::1:11"), Proto: "tcp", DPort: 443, State: "NEW"}, true},
		{"blocked host", IPv4, Packet{Chain: "OUTPUT", Src: pi, Dst: a("198.18.1.12"), Proto: "tcp", DPort: 443, State: "NEW"}, false},
		{"neighbour solicitation", IPv6, Packet{Chain: "INPUT", Src: a("fe80::1"), Dst: a("ff02::1:ff00:1"), Proto: "ipv6-icmp", ICMPType: 135, State: "NEW"}, true},
		{"forwarding", IPv4, Packet{Chain: "FORWARD", Src: admin, Dst: a("198.18.1.11"), Proto: "tcp", DPort: 443, State: "NEW"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.packet.Sets = d.SetMembers()
			v := Evaluate(d.Family(tt.fam), tt.packet)
			if v.Accept != tt.accept {
				t.Errorf("Evaluate: got accept=%v (by %s), want %v", v.Accept, v.By, tt.accept)
			}
		})
	}
}

func TestCheckSSH(t *testing.T) {
	a := netip.MustParseAddr
	d := lockoutDesired(t, lockoutPlan)
	if err := CheckSSH(d.V4, d.V6, a("198.18.0.1"), a("198.18.2.1"), 22, "eth0", d.SetMembers()); err != nil {
		t.Errorf("admin over IPv4: %v", err)
	}
	if err := CheckSSH(d.V4, d.V6, a("fd70:6977:616c::1"), a("fd70:6977:616c::2:1"), 22, "eth0", d.SetMembers()); err != nil {
		t.Errorf("admin over IPv6: %v", err)
	}
	err := CheckSSH(d.V4, d.V6, a("198.18.0.66"), a("198.18.2.1"), 22, "eth0", d.SetMembers())
	if err == nil || !strings.Contains(err.Error(), "policy DROP") {
		t.Errorf("intruder: got %v, want dropped by policy DROP", err)
	}
	err = CheckSSH(d.V4, d.V6, a("198.18.0.1"), a("198.18.2.1"), 2222, "eth0", d.SetMembers())
	if err == nil {
		t.Errorf("admin to a port the plan does not open: got nil, want an error")
	}
}

func TestEvaluateForeignRules(t *testing.T) {
	a := netip.MustParseAddr
	ssh := Packet{Chain: "INPUT", Src: a("198.18.0.1"), Dst: a("198.18.2.1"), Proto: "tcp", DPort: 22, State: "NEW"}
	tests := []struct {
		name    string
		ruleset string
		accept  bool
		by      string
	}{
		{"fresh host accepts everything", "", true, ""},
		{"fail2ban chain bans the admin", `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -s 198.18.0.1/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
`, false, "-A f2b-sshd -s 198.18.0.1/32 -j REJECT --reject-with icmp-port-unreachable"},
		{"fail2ban chain bans someone else", `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
`, true, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"},
		{"an unknown match may not match", `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m recent --rcheck --name ssh -j ACCEPT
COMMIT
`, false, "policy DROP"},
		{"an unknown match may drop", `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m geoip --src-cc XX -j DROP
COMMIT
`, false, "-A INPUT -m geoip --src-cc XX -j DROP"},
		{"a negated source", `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT ! -s 198.18.0.0/24 -j DROP
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
`, true, "-A INPUT -p tcp --dport 22 -j ACCEPT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse(tt.ruleset)
			if err != nil {
				t.Fatal(err)
			}
			v := Evaluate(rs, ssh)
			if v.Accept != tt.accept || (tt.by != "" && v.By != tt.by) {
				t.Errorf("Evaluate: got accept=%v by %q; want accept=%v by %q", v.Accept, v.By, tt.accept, tt.by)
			}
		})
	}
}

// TestCheckSSHWithOthersRules: the lockout check evaluates the tables the
// host will hold, others' rules first, for the operator's next connection
// as the host sees it: the interface it arrives on, a SYN, no mark. What
// can be decided is; what cannot is assumed the worse.
func TestCheckSSHWithOthersRules(t *testing.T) {
	d := lockoutDesired(t, lockoutPlan)
	a := netip.MustParseAddr
	admin, pi := a("198.18.0.1"), a("198.18.2.1")
	f2b := func(jump string) string {
		return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n" +
			jump + "\n-A f2b-sshd -s 198.18.0.1/32 -j REJECT --reject-with icmp-port-unreachable\n-A f2b-sshd -j RETURN\nCOMMIT\n"
	}
	tests := []struct {
		name, live, iface string
		refused           bool
		// The live INPUT rule is nobody else's: it stands first in the
		// desired rules, as a rule of piwall's own.
		own bool
	}{
		{"the operator banned by fail2ban", f2b("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"), "eth0", true, false},
		{"banned, on the interface of the jump", f2b("-A INPUT -i eth0 -p tcp -m multiport --dports 22 -j f2b-sshd"), "eth0", true, false},
		{"banned, interface unknown", f2b("-A INPUT -i eth0 -p tcp -m multiport --dports 22 -j f2b-sshd"), "", true, false},
		{"banned on another interface", f2b("-A INPUT -i eth0 -p tcp -m multiport --dports 22 -j f2b-sshd"), "wlan0", false, false},
		{"banned for another port", f2b("-A INPUT -p tcp -m multiport --dports 2222 -j f2b-sshd"), "eth0", false, false},
		{"ufw-not-local returns for the host's own address", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ufw-not-local - [0:0]\n" +
			"-A INPUT -j ufw-not-local\n-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN\n-A ufw-not-local -m addrtype --dst-type MULTICAST -j RETURN\n-A ufw-not-local -j DROP\nCOMMIT\n", "eth0", false, false},
		{"kube-proxy drops marked packets only", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n" +
			"-A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -m comment --comment \"kubernetes firewall for dropping marked packets\" -m mark --mark 0x8000/0x8000 -j DROP\nCOMMIT\n", "eth0", false, false},
		{"new connections without SYN dropped", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j DROP\nCOMMIT\n", "eth0", false, true},
		{"SYN floods dropped", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"-A INPUT -p tcp -m tcp --syn -m conntrack --ctstate NEW -j DROP\nCOMMIT\n", "eth0", true, true},
		{"a recent limit cannot be known", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP\nCOMMIT\n", "eth0", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live, err := Parse(tt.live)
			if err != nil {
				t.Fatal(err)
			}
			f, err := NewForeign([]string{"f2b-*", "ufw-*", "KUBE-*"}, nil, live)
			if err != nil {
				t.Fatal(err)
			}
			own := d.V4
			if tt.own {
				own, err = Parse(strings.Replace(d.V4.Text(), ":OUTPUT DROP [0:0]\n", ":OUTPUT DROP [0:0]\n"+live.Table("filter").Chain("INPUT").Rules[0].Line("INPUT")+"\n", 1))
				if err != nil {
					t.Fatal(err)
				}
			}
			err = CheckSSH(f.Merge(own, live), d.V6, admin, pi, 22, tt.iface, nil)
			if (err != nil) != tt.refused {
				t.Errorf("CheckSSH: %v; want refused %v", err, tt.refused)
			}
		})
	}
}

// TestEvaluateFollowsEachChainOnce: jumps to chains whose matches cannot
// be decided, sixty deep. Were both outcomes of each followed to the end,
// the check would not end.
func TestEvaluateFollowsEachChainOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n")
	const n = 60
	for i := range n {
		fmt.Fprintf(&b, ":c%02d - [0:0]\n", i)
	}
	b.WriteString("-A INPUT -j c00\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n")
	for i := range n - 1 {
		fmt.Fprintf(&b, "-A c%02d -m recent --rcheck --name x%d -j c%02d\n-A c%02d -m set --match-set s%d src -j c%02d\n", i, i, i+1, i, i, i+1)
	}
	fmt.Fprintf(&b, "-A c%02d -m recent --rcheck --name last -j RETURN\n", n-1)
	rs, err := Parse(b.String() + "COMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	p := Packet{Chain: "INPUT", In: "eth0", Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.2.1"), Proto: "tcp", DPort: 22, State: "NEW", TCPFlags: []string{"SYN"}}
	if v := Evaluate(rs, p); !v.Accept {
		t.Errorf("Evaluate: %+v, want accepted (every way returns, then tcp/22 is accepted)", v)
	}
}

// TestCheckSSHInboundName: an inbound name (an admin's dynamic DNS)
// admits the addresses it has now, no more; a set whose members are not
// known admits nothing for sure.
func TestCheckSSHInboundName(t *testing.T) {
	const plan = `
allowlist "kiosk" {
  inbound {
    from  = ["admin.dyn.example"]
    ports = ["tcp/22"]
  }
}
host "pi" {
  address    = "198.18.2.1"
  allowlists = ["kiosk"]
}
`
	a := netip.MustParseAddr
	pol := loadPlan(t, plan).Host("pi").Policy
	d, err := Compile(Input{Policy: pol, Resolvers: []netip.Addr{a("198.18.1.53")},
		Names: map[string]Resolution{"admin.dyn.example": {Name: "admin.dyn.example", Addrs: []netip.Addr{a("198.18.0.1")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Sets) != 1 {
		t.Fatalf("sets %+v, want one for admin.dyn.example", d.Sets)
	}
	for _, tt := range []struct {
		name     string
		operator netip.Addr
		sets     map[string][]netip.Addr
		admitted bool
	}{
		{"the name's address now", a("198.18.0.1"), d.SetMembers(), true},
		{"another address", a("198.18.0.2"), d.SetMembers(), false},
		{"members unknown", a("198.18.0.1"), nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSSH(d.V4, d.V6, tt.operator, a("198.18.2.1"), 22, "eth0", tt.sets)
			if (err == nil) != tt.admitted {
				t.Errorf("CheckSSH: %v, want admitted %v", err, tt.admitted)
			}
		})
	}
}
