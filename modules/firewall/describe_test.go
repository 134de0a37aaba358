package firewall

import (
	"strings"
	"testing"
)

// ruleOf parses one iptables-save rule line, "-A CHAIN ...", into its chain
// and Rule.
func ruleOf(t *testing.T, line string) (string, *Rule) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "-A" {
		t.Fatalf("ruleOf(%q): not a rule line", line)
	}
	chain := f[1]
	decl := ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
	if chain != "INPUT" && chain != "FORWARD" && chain != "OUTPUT" {
		decl += ":" + chain + " - [0:0]\n"
	}
	rs, err := Parse("*filter\n" + decl + line + "\nCOMMIT\n")
	if err != nil {
		t.Fatalf("ruleOf(%q): %v", line, err)
	}
	rules := rs.Table("filter").Chain(chain).Rules
	if len(rules) != 1 {
		t.Fatalf("ruleOf(%q): got %d rules, want 1", line, len(rules))
	}
	return chain, rules[0]
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string
	}{
		{"audit mode's log",
			`-A OUTPUT -m limit --limit 1/sec -m comment --comment "piwall: audit" -j LOG --log-prefix "piwall would drop out: "`,
			"audit mode: log what the rules would drop out (at most 1/sec)"},
		{"audit mode's accept",
			`-A INPUT -m comment --comment "piwall: audit" -j ACCEPT`,
			"audit mode: allow in what the rules would drop"},
		{"outbound to a name",
			`-A OUTPUT -d 93.184.216.34/32 -p tcp -m tcp --dport 443 -m comment --comment "piwall: kiosk outbound 1: api.example.com" -j ACCEPT`,
			"allow out tcp/443 to api.example.com (93.184.216.34)"},
		{"outbound to a name over IPv6",
			`-A OUTPUT -d 2606:2800:220:1:248:1893:25c8:1946/128 -p tcp -m tcp --dport 443 -m comment --comment "piwall: kiosk outbound 1: api.example.com" -j ACCEPT`,
			"allow out tcp/443 to api.example.com (2606:2800:220:1:248:1893:25c8:1946)"},
		{"inbound from an address",
			`-A INPUT -s 198.18.0.1/32 -p tcp -m tcp --dport 22 -m comment --comment "piwall: admin inbound 1: 198.18.0.1" -j ACCEPT`,
			"allow in tcp/22 from 198.18.0.1"},
		{"inbound from an IPv6 address",
			`-A INPUT -s fd00::5/128 -p tcp -m tcp --dport 22 -m comment --comment "piwall: admin inbound 1: fd00::5" -j ACCEPT`,
			"allow in tcp/22 from fd00::5"},
		{"inbound from a network",
			`-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 22 -m comment --comment "piwall: admin inbound 1: 192.168.1.0/24" -j ACCEPT`,
			"allow in tcp/22 from 192.168.1.0/24"},
		{"inbound from an IPv6 network",
			`-A INPUT -s 2001:db8:1::/48 -p tcp -m tcp --dport 22 -m comment --comment "piwall: admin inbound 1: 2001:db8:1::/48" -j ACCEPT`,
			"allow in tcp/22 from 2001:db8:1::/48"},
		{"outbound with no ports",
			`-A OUTPUT -d 203.0.113.7/32 -m comment --comment "piwall: kiosk outbound 2: 203.0.113.7" -j ACCEPT`,
			"allow out all traffic to 203.0.113.7"},
		{"inbound with no ports",
			`-A INPUT -s 2001:db8:ff::1/128 -m comment --comment "piwall: lab inbound 2: 2001:db8:ff::1" -j ACCEPT`,
			"allow in all traffic from 2001:db8:ff::1"},
		{"dhcp out", `-A OUTPUT -p udp -m udp --sport 68 --dport 67 -m comment --comment "piwall: dhcp" -j ACCEPT`,
			"allow out dhcp udp/68 → udp/67"},
		{"dhcpv6 in", `-A INPUT -p udp -m udp --sport 547 --dport 546 -m comment --comment "piwall: dhcpv6" -j ACCEPT`,
			"allow in dhcpv6 udp/547 → udp/546"},
		{"mld query", `-A INPUT -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 130 -m comment --comment "piwall: mld" -j ACCEPT`,
			"allow in mld query from fe80::/10"},
		{"mld report", `-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 143 -m comment --comment "piwall: mld" -j ACCEPT`,
			"allow out mld report (v2)"},
		{"mdns to the group", `-A OUTPUT -d 224.0.0.251/32 -p udp -m udp --dport 5353 -m comment --comment "piwall: mdns" -j ACCEPT`,
			"allow out mdns udp/5353 to 224.0.0.251"},
		{"mdns unicast answers", `-A INPUT -p udp -m udp --sport 5353 --dport 5353 -m comment --comment "piwall: mdns" -j ACCEPT`,
			"allow in mdns udp/5353 → udp/5353"},
		{"udp", `-A OUTPUT -d 192.0.2.124/32 -p udp -m udp --dport 123 -m comment --comment "piwall: ntp outbound 1: 1.debian.pool.ntp.org" -j ACCEPT`,
			"allow out udp/123 to 1.debian.pool.ntp.org (192.0.2.124)"},
		{"a tcp range", `-A OUTPUT -d 203.0.113.5/32 -p tcp -m tcp --dport 8000:8100 -m comment --comment "piwall: lab outbound 1: 203.0.113.5" -j ACCEPT`,
			"allow out tcp/8000-8100 to 203.0.113.5"},
		{"a udp range", `-A OUTPUT -d 2001:db8::5/128 -p udp -m udp --dport 60000:61000 -m comment --comment "piwall: lab outbound 1: 2001:db8::5" -j ACCEPT`,
			"allow out udp/60000-61000 to 2001:db8::5"},
		{"icmp", `-A INPUT -s 192.168.1.0/24 -p icmp -m comment --comment "piwall: lab inbound 1: 192.168.1.0/24" -j ACCEPT`,
			"allow in icmp from 192.168.1.0/24"},
		{"icmpv6", `-A OUTPUT -d 2001:db8::5/128 -p ipv6-icmp -m comment --comment "piwall: lab outbound 1: 2001:db8::5" -j ACCEPT`,
			"allow out icmp to 2001:db8::5"},
		{"ping out to a name", `-A OUTPUT -d 93.184.216.34/32 -p icmp -m icmp --icmp-type 8 -m comment --comment "piwall: kiosk outbound 1: api.example.com" -j ACCEPT`,
			"allow out ping to api.example.com (93.184.216.34)"},
		{"ping in over IPv6", `-A INPUT -s fd00:1::/64 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m comment --comment "piwall: kiosk inbound 1: fd00:1::/64" -j ACCEPT`,
			"allow in ping from fd00:1::/64"},
		{"to any address", `-A OUTPUT -p tcp -m tcp --dport 443 -m comment --comment "piwall: updates outbound 1: 0.0.0.0/0" -j ACCEPT`,
			"allow out tcp/443 to 0.0.0.0/0"},
		{"loopback in", `-A INPUT -i lo -m comment --comment "piwall: loopback" -j ACCEPT`, "allow in loopback"},
		{"loopback out", `-A OUTPUT -o lo -m comment --comment "piwall: loopback" -j ACCEPT`, "allow out loopback"},
		{"replies in", `-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "piwall: replies" -j ACCEPT`,
			"allow in replies (RELATED,ESTABLISHED)"},
		{"replies out", `-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "piwall: replies" -j ACCEPT`,
			"allow out replies (RELATED,ESTABLISHED)"},
		{"neighbour solicitation", `-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "piwall: neighbour discovery" -j ACCEPT`,
			"allow in icmpv6 neighbour solicitation"},
		{"router advertisement", `-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 134 -m comment --comment "piwall: neighbour discovery" -j ACCEPT`,
			"allow in icmpv6 router advertisement"},
		{"router solicitation", `-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m comment --comment "piwall: neighbour discovery" -j ACCEPT`,
			"allow out icmpv6 router solicitation"},
		{"neighbour advertisement", `-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m comment --comment "piwall: neighbour discovery" -j ACCEPT`,
			"allow out icmpv6 neighbour advertisement"},
		{"dns over udp", `-A OUTPUT -d 192.168.1.1/32 -p udp -m udp --dport 53 -m comment --comment "piwall: dns" -j ACCEPT`,
			"allow out dns udp/53 to 192.168.1.1"},
		{"dns over tcp and IPv6", `-A OUTPUT -d fd00::1/128 -p tcp -m tcp --dport 53 -m comment --comment "piwall: dns" -j ACCEPT`,
			"allow out dns tcp/53 to fd00::1"},
		{"an allowlist named dns", `-A OUTPUT -d 192.0.2.1/32 -p udp -m udp --dport 53 -m comment --comment "piwall: dns outbound 1: resolver.example.com" -j ACCEPT`,
			"allow out udp/53 to resolver.example.com (192.0.2.1)"},
		{"an allowlist named dns-servers", `-A OUTPUT -d 192.0.2.1/32 -p udp -m udp --dport 53 -m comment --comment "piwall: dns-servers outbound 1: resolver.example.com" -j ACCEPT`,
			"allow out udp/53 to resolver.example.com (192.0.2.1)"},
		{"log drops in", `-A INPUT -m limit --limit 5/min -m comment --comment "piwall: log drops" -j LOG --log-prefix "piwall drop in: "`,
			"log drops in (at most 5/min)"},
		{"log drops out", `-A OUTPUT -m limit --limit 5/min -m comment --comment "piwall: log drops" -j LOG --log-prefix "piwall drop out: "`,
			"log drops out (at most 5/min)"},
		{"a comment cut short", `-A OUTPUT -d 203.0.113.99/32 -p tcp -m tcp --dport 443 -m comment --comment "piwall: a outbound 1: very-long.exam..." -j ACCEPT`,
			"allow out tcp/443 to very-long.exam... (203.0.113.99)"},

		{"a foreign rule", `-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT`,
			"foreign rule in INPUT: -A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT"},
		{"a jump to a kept chain", `-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd`,
			"foreign rule in INPUT: -A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"},
		{"a rule of a kept chain", `-A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable`,
			"foreign rule in f2b-sshd: -A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable"},
		{"a foreign rule with a comment", `-A INPUT -s 10.0.0.1/32 -m comment --comment "added by hand" -j ACCEPT`,
			`foreign rule in INPUT: -A INPUT -s 10.0.0.1/32 -m comment --comment "added by hand" -j ACCEPT`},
		{"a comment mentioning piwall", `-A INPUT -s 10.0.0.1/32 -m comment --comment "not piwall: mine" -j ACCEPT`,
			`foreign rule in INPUT: -A INPUT -s 10.0.0.1/32 -m comment --comment "not piwall: mine" -j ACCEPT`},
		{"a piwall comment on a negation", `-A INPUT ! -s 10.0.0.1/32 -m comment --comment "piwall: admin inbound 1: 10.0.0.1" -j ACCEPT`,
			`foreign rule in INPUT: -A INPUT ! -s 10.0.0.1/32 -m comment --comment "piwall: admin inbound 1: 10.0.0.1" -j ACCEPT`},
		{"a piwall comment on an unknown match", `-A INPUT -p tcp -m multiport --dports 22,80 -m comment --comment "piwall: admin inbound 1: any" -j ACCEPT`,
			`foreign rule in INPUT: -A INPUT -p tcp -m multiport --dports 22,80 -m comment --comment "piwall: admin inbound 1: any" -j ACCEPT`},
		{"a foreign rule with no match", `-A FORWARD -j DROP`, "foreign rule in FORWARD: -A FORWARD -j DROP"},
		{"a rule ending in an option without value", `-A INPUT -m comment --comment "piwall: loopback" -j`,
			`foreign rule in INPUT: -A INPUT -m comment --comment "piwall: loopback" -j`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, r := ruleOf(t, tt.line)
			if got := Describe(chain, r); got != tt.want {
				t.Errorf("Describe(%s):\ngot  %q\nwant %q", tt.line, got, tt.want)
			}
		})
	}
}

// TestDescribeGolden describes every rule of every compiled golden case:
// none of the rules piwall writes reads as foreign or as a bare address
// where the plan named a host.
func TestDescribeGolden(t *testing.T) {
	for _, c := range loadGolden(t, "compile") {
		t.Run(c.name, func(t *testing.T) {
			d := compileCase(t, c)
			for _, rs := range []*Ruleset{d.V4, d.V6} {
				for _, ch := range rs.Table("filter").Chains {
					for _, r := range ch.Rules {
						got := Describe(ch.Name, r)
						comment, _ := r.Option("--comment")
						if !strings.HasPrefix(comment, "piwall: ") {
							continue // a kept jump or chain
						}
						if strings.HasPrefix(got, "foreign") {
							t.Errorf("Describe(%s) = %q: piwall's own rule reads as foreign", r.Line(ch.Name), got)
						}
						if _, peer, ok := strings.Cut(comment, ": "); ok {
							if _, written, ok := strings.Cut(peer, ": "); ok && !strings.Contains(got, strings.TrimSuffix(written, "...")) {
								t.Errorf("Describe(%s) = %q: want the peer as written, %q", r.Line(ch.Name), got, written)
							}
						}
					}
				}
			}
		})
	}
}
