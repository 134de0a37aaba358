package firewall

import (
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
	if err := CheckSSH(d.V4, d.V6, a("198.18.0.1"), a("198.18.2.1"), 22); err != nil {
		t.Errorf("admin over IPv4: %v", err)
	}
	if err := CheckSSH(d.V4, d.V6, a("fd70:6977:616c::1"), a("fd70:6977:616c::2:1"), 22); err != nil {
		t.Errorf("admin over IPv6: %v", err)
	}
	err := CheckSSH(d.V4, d.V6, a("198.18.0.66"), a("198.18.2.1"), 22)
	if err == nil || !strings.Contains(err.Error(), "policy DROP") {
		t.Errorf("intruder: got %v, want dropped by policy DROP", err)
	}
	err = CheckSSH(d.V4, d.V6, a("198.18.0.1"), a("198.18.2.1"), 2222)
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
