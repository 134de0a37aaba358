// Package examples_test keeps every plan under examples/ valid: it decodes
// each without errors or warnings, compiles each host's rulesets, and checks
// that none can lock out loopback, DNS, or SSH from the networks the plan
// admits it from. Run: go test ./examples
package examples_test

import (
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

func TestExamples(t *testing.T) {
	var files []string
	filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".hcl") {
			files = append(files, path)
		}
		return err
	})
	if len(files) < 2 {
		t.Fatalf("found %d example plans, want examples/site.hcl and examples/lab/site.hcl at least", len(files))
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			p, diags := plans.Load(file, plans.Options{})
			if len(diags) > 0 {
				t.Fatalf("want no diagnostics, got:\n%s", diags)
			}
			for _, h := range p.Hosts {
				checkHost(t, h)
			}
		})
	}
}

// checkHost compiles h's rulesets, with documentation addresses for its
// names and resolvers, and checks what must always pass.
func checkHost(t *testing.T, h *plans.Host) {
	t.Helper()
	in := firewall.Input{
		Policy:    h.Policy,
		Names:     map[string]firewall.Resolution{},
		Resolvers: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
	}
	for i, name := range firewall.Names(h.Policy) {
		in.Names[name] = firewall.Resolution{Name: name, Addrs: []netip.Addr{
			netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}),
			netip.MustParseAddr("2001:db8::" + strings.Repeat("1", 1+i%3)),
		}}
	}
	d, err := firewall.Compile(in)
	if err != nil {
		t.Fatalf("%s: compile: %v", h.Name, err)
	}
	self4, self6 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")
	always := []struct {
		what string
		fam  firewall.Family
		p    firewall.Packet
	}{
		{"loopback in", firewall.IPv4, firewall.Packet{Chain: "INPUT", In: "lo", Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), Proto: "tcp", DPort: 631, State: "NEW"}},
		{"loopback out", firewall.IPv4, firewall.Packet{Chain: "OUTPUT", Out: "lo", Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), Proto: "tcp", DPort: 631, State: "NEW"}},
		{"IPv6 loopback out", firewall.IPv6, firewall.Packet{Chain: "OUTPUT", Out: "lo", Src: netip.MustParseAddr("::1"), Dst: netip.MustParseAddr("::1"), Proto: "udp", DPort: 53, State: "NEW"}},
	}
	if h.Policy.DNS.Mode != "none" {
		always = append(always,
			struct {
				what string
				fam  firewall.Family
				p    firewall.Packet
			}{"dns", firewall.IPv4, firewall.Packet{Chain: "OUTPUT", Src: self4, Dst: netip.MustParseAddr("192.0.2.53"), Proto: "udp", DPort: 53, State: "NEW"}})
	}
	for _, c := range always {
		if v := firewall.Evaluate(d.Family(c.fam), c.p); !v.Accept {
			t.Errorf("%s: %s is dropped (by %s)", h.Name, c.what, v.By)
		}
	}
	// SSH from the first address of every network an inbound tcp/22 entry admits.
	admitted := 0
	for _, e := range h.Policy.Inbound {
		if !sshEntry(e) {
			continue
		}
		for _, peer := range e.Peers {
			if peer.Name != "" {
				continue
			}
			from := peer.Prefix.Addr()
			host := self4
			if !from.Is4() {
				host = self6
			}
			if err := firewall.CheckSSH(d.V4, d.V6, from, host, 22, "", d.SetMembers()); err != nil {
				t.Errorf("%s: %v", h.Name, err)
			}
			admitted++
		}
	}
	if admitted == 0 {
		t.Errorf("%s: no inbound tcp/22 entry from an address or network", h.Name)
	}
}

func sshEntry(e *plans.Entry) bool {
	if len(e.Ports) == 0 {
		return true
	}
	for _, p := range e.Ports {
		if p.Proto == "tcp" && p.From <= 22 && 22 <= p.To {
			return true
		}
	}
	return false
}
