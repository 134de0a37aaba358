package runner

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/piwall/piwall/modules/firewall"
)

// LocalResolver resolves names with this machine's resolver, for offline
// work (piwall render --resolve=local). Hosts normally resolve names
// themselves, since a laptop may not see a Pi's DNS.
type LocalResolver struct {
	Resolver *net.Resolver // nil means net.DefaultResolver
}

// Resolve returns name's addresses (IPv4 first, each sorted) and, when the
// name is an alias, the canonical name it leads to.
func (l LocalResolver) Resolve(ctx context.Context, name string) (firewall.Resolution, error) {
	r := l.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return firewall.Resolution{}, fmt.Errorf("resolving %s here: %w", name, err)
	}
	res := firewall.Resolution{Name: name}
	for _, a := range addrs {
		res.Addrs = append(res.Addrs, a.Unmap())
	}
	firewall.SortAddrs(res.Addrs)
	if cname, err := r.LookupCNAME(ctx, name); err == nil {
		if c := strings.TrimSuffix(cname, "."); c != "" && !strings.EqualFold(c, name) {
			res.CNAMEs = []string{c}
		}
	}
	return res, nil
}
