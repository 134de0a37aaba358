//go:build linux

package lab

import (
	"fmt"
	"net/netip"
)

// The lab's address plan, chosen once and kept to. Nothing outside these
// ranges is ever configured, and no namespace of the lab has a default route,
// so no packet can leave the lab.
//
//	IPv4 198.18.0.0/16 (RFC 2544, benchmarking; never routed on the internet)
//	IPv6 fd70:6977:616c::/64 (a unique local prefix; "piwal" in its bytes)
//
//	198.18.0.1    fd70:6977:616c::1       controller, the operator's laptop (root namespace, on the bridge)
//	198.18.0.66   fd70:6977:616c::66      intruder, an address no plan admits
//	198.18.1.10   fd70:6977:616c::1:10    edge.cdn.lab, where dashboard.lab leads (tcp/443)
//	198.18.1.11   fd70:6977:616c::1:11    api.lab (tcp/443)
//	198.18.1.12   fd70:6977:616c::1:12    blocked.lab (tcp/443), never allowed by a plan
//	198.18.1.21   fd70:6977:616c::1:21    api-next.lab (tcp/443), where a test moves api.lab
//	198.18.1.53   fd70:6977:616c::1:53    ns.lab, the DNS server every Pi uses
//	198.18.1.123  fd70:6977:616c::1:123   ntp.lab (udp/123)
//	198.18.2.N    fd70:6977:616c::2:N     pi-NN, N = 1..50 (N written in decimal in both)
const (
	prefix4 = "198.18.0.0/16"
	prefix6 = "fd70:6977:616c::/64"

	// Prefix starts the name of every namespace, link and bridge the lab
	// makes, so that cleaning up never touches anything else.
	Prefix     = "pwl-"
	bridgeName = Prefix + "br0"
	svcNetns   = Prefix + "svc"
	intrNetns  = Prefix + "intruder"

	// MaxPis is the largest fleet the address plan and the names allow.
	MaxPis = 50
)

var (
	// Controller is the operator's address: the root namespace on the lab bridge.
	Controller = Addrs{V4: addr("198.18.0.1"), V6: addr("fd70:6977:616c::1")}
	// Intruder is the address of a namespace that no plan should admit.
	Intruder = Addrs{V4: addr("198.18.0.66"), V6: addr("fd70:6977:616c::66")}
	// DNS is the lab's name server, the resolver of every Pi.
	DNS = Addrs{V4: addr("198.18.1.53"), V6: addr("fd70:6977:616c::1:53")}
)

// Addrs is one lab host's pair of addresses.
type Addrs struct {
	V4, V6 netip.Addr
}

// Service is a listener in the services namespace, reachable by name.
type Service struct {
	Name  string // the DNS name it has, e.g. "api.lab"
	Proto string // "tcp" or "udp"
	Port  int
	Addrs Addrs
	// Banner is what the service sends: on connect for tcp, in reply to any
	// datagram for udp. Tests read it to know who answered.
	Banner string
}

// Services are the lab's listeners. dashboard.lab reaches edge.cdn.lab through
// a CNAME chain (see dnsRecords).
var Services = []Service{
	{Name: "edge.cdn.lab", Proto: "tcp", Port: 443, Addrs: Addrs{addr("198.18.1.10"), addr("fd70:6977:616c::1:10")}, Banner: "dashboard"},
	{Name: "api.lab", Proto: "tcp", Port: 443, Addrs: Addrs{addr("198.18.1.11"), addr("fd70:6977:616c::1:11")}, Banner: "api"},
	{Name: "blocked.lab", Proto: "tcp", Port: 443, Addrs: Addrs{addr("198.18.1.12"), addr("fd70:6977:616c::1:12")}, Banner: "blocked"},
	{Name: "api-next.lab", Proto: "tcp", Port: 443, Addrs: Addrs{addr("198.18.1.21"), addr("fd70:6977:616c::1:21")}, Banner: "api-next"},
	{Name: "ntp.lab", Proto: "udp", Port: 123, Addrs: Addrs{addr("198.18.1.123"), addr("fd70:6977:616c::1:123")}, Banner: "ntp"},
}

// cnames is the lab's CNAME chain, in order: each name points to the next.
var cnames = []string{"dashboard.lab", "dashboard.cdn.lab", "edge.cdn.lab"}

// PiName is the label and hostname of the i-th Pi (1-based): pi-01, pi-02, ...
func PiName(i int) string { return fmt.Sprintf("pi-%02d", i) }

// PiAddrs are the addresses of the i-th Pi (1-based).
func PiAddrs(i int) Addrs {
	return Addrs{
		V4: addr(fmt.Sprintf("198.18.2.%d", i)),
		V6: addr(fmt.Sprintf("fd70:6977:616c::2:%d", i)),
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// bits of the lab prefixes, for the addresses configured on interfaces.
func prefixLen4() int { return netip.MustParsePrefix(prefix4).Bits() }
func prefixLen6() int { return netip.MustParsePrefix(prefix6).Bits() }

// inLab reports whether a is inside the lab's ranges.
func inLab(a netip.Addr) bool {
	return netip.MustParsePrefix(prefix4).Contains(a) || netip.MustParsePrefix(prefix6).Contains(a)
}
