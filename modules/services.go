package modules

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// HostAddr is one of the host's addresses, as `ip -o addr show` prints it.
type HostAddr struct {
	Iface   string
	Prefix  netip.Prefix
	Global  bool // scope global
	Dynamic bool // with a lifetime: leased (DHCP), or from router advertisements
}

// parseAddrs reads `ip -o addr show`: "2: eth0    inet 192.168.1.11/24 brd
// ... scope global dynamic eth0\ valid_lft ...". Lines it cannot read are
// passed over: they only ever add a service.
func parseAddrs(lines []string) []HostAddr {
	var out []HostAddr
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 4 || (f[2] != "inet" && f[2] != "inet6") {
			continue
		}
		pfx, err := netip.ParsePrefix(f[3])
		if err != nil {
			continue
		}
		a := HostAddr{Iface: strings.TrimSuffix(f[1], ":"), Prefix: pfx}
		for i, tok := range f[4:] {
			switch {
			case tok == "dynamic":
				a.Dynamic = true
			case tok == "scope" && i+5 < len(f):
				a.Global = f[i+5] == "global"
			}
		}
		out = append(out, a)
	}
	return out
}

// services decides which of the host's own network services its rules
// keep working: what the plan's switches say, and where they say nothing,
// what the host uses (address is how the plan reaches it). Each service
// kept comes with why, for the plan to say.
func services(k plans.Keep, f *Facts, address string) (firewall.Services, []string) {
	var s firewall.Services
	var why []string
	decide := func(sw plans.Switch, on *bool, name, used string) {
		switch {
		case sw == plans.On:
			*on = true
			why = append(why, name+": the plan says "+name+" = true")
		case sw == plans.Auto && used != "":
			*on = true
			why = append(why, name+": "+used+" ("+name+" = false turns it off)")
		}
	}
	var dhcp, dhcp6, ipv6, mdns string
	for _, a := range f.Addrs {
		switch {
		case a.Iface == "lo" || a.Prefix.Addr().IsLoopback():
		case a.Prefix.Addr().Is4() && a.Dynamic && dhcp == "":
			dhcp = fmt.Sprintf("%s's %s is leased", a.Iface, a.Prefix)
		case a.Prefix.Addr().Is6() && a.Dynamic && a.Global && a.Prefix.Bits() == 128 && dhcp6 == "":
			dhcp6 = fmt.Sprintf("%s's %s is leased by DHCPv6", a.Iface, a.Prefix)
		}
		if a.Prefix.Addr().Is6() && a.Iface != "lo" && ipv6 == "" {
			ipv6 = "IPv6 is up on " + a.Iface
		}
	}
	for _, d := range []string{"dhclient", "dhcpcd"} {
		if dhcp == "" && f.Daemons[d] {
			dhcp = d + " runs"
		}
	}
	switch {
	case f.Daemons["avahi-daemon"]:
		mdns = "avahi-daemon runs"
	case strings.HasSuffix(strings.TrimSuffix(strings.ToLower(address), "."), ".local"):
		mdns = "the plan reaches the host as " + address
	}
	decide(k.DHCP, &s.DHCP, "dhcp", dhcp)
	decide(k.DHCPv6, &s.DHCPv6, "dhcpv6", dhcp6)
	decide(k.MLD, &s.MLD, "mld", ipv6)
	decide(k.MDNS, &s.MDNS, "mdns", mdns)
	return s, why
}
