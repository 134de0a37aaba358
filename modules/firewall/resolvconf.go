package firewall

import (
	"net/netip"
	"strings"
)

// ParseResolvConf reads the resolvers of an /etc/resolv.conf: the address
// of each nameserver line, in order, each once. Lines it does not know and
// malformed addresses are skipped, as the C library does.
func ParseResolvConf(text string) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.Zone() != "" {
			continue
		}
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
