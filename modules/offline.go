package modules

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// Offline is what `piwall render` knows of a host without reaching it: the
// addresses of names pinned with --address, its resolvers given with
// --resolver, and with --resolve=local this machine's resolver and
// resolv.conf standing in for the host's. Names are resolved on the host
// when piwall plans, because a laptop may not see a Pi's DNS; offline, the
// operator says where the answers come from.
type Offline struct {
	Pins      map[string]firewall.Resolution // by lowercase name, from ParsePins
	Resolvers []netip.Addr                   // from ParseResolvers
	Local     bool                           // --resolve=local
	// Resolve looks a name up with this machine's resolver; used with
	// Local, for the names not pinned. The caller provides it, since
	// modules does no network I/O.
	Resolve func(ctx context.Context, name string) (firewall.Resolution, error)
	// ResolvConf is this machine's resolv.conf, read with Local for a host
	// with dns = "system" when no Resolvers are given; "" is
	// /etc/resolv.conf.
	ResolvConf string
}

// Input is what h's rulesets are compiled from offline. Each name the
// policy uses is taken from Pins first, else with Local looked up with
// Resolve; a name left over is an error that lists every one. A policy with
// dns = "system" takes Resolvers, else with Local the nameservers of this
// machine's resolv.conf, else is an error saying how to name them.
func (o *Offline) Input(ctx context.Context, h *plans.Host) (firewall.Input, error) {
	in := firewall.Input{Policy: h.Policy, Names: map[string]firewall.Resolution{}}
	// No facts offline: the services the plan switches on, and mDNS for a
	// host reached by its .local name.
	in.Services, _ = services(h.Policy.Keep, &Facts{}, h.Address.V)
	var unresolved []string
	for _, name := range firewall.Names(h.Policy) {
		if r, ok := o.Pins[name]; ok {
			in.Names[name] = r
			continue
		}
		if !o.Local {
			unresolved = append(unresolved, name)
			continue
		}
		if o.Resolve == nil {
			return firewall.Input{}, fmt.Errorf("host %s: resolving %s here: no local resolver given", h.Name, name)
		}
		r, err := o.Resolve(ctx, name)
		if err != nil {
			return firewall.Input{}, WithHint(fmt.Errorf("host %s: %w", h.Name, err), "pin it with --address "+name+"=ADDR")
		}
		in.Names[name] = r
	}
	if len(unresolved) > 0 {
		return firewall.Input{}, WithHint(
			fmt.Errorf("host %s: %s not resolved: names are resolved on the host when piwall plans, and render does not reach it", h.Name, strings.Join(unresolved, ", ")),
			"resolve them with this machine's resolver with --resolve=local, or pin them with --address NAME=ADDR[,ADDR...]")
	}
	in.Resolvers = append([]netip.Addr(nil), o.Resolvers...)
	if len(in.Resolvers) > 0 || h.Policy.DNS.Mode != "system" {
		return in, nil
	}
	if !o.Local {
		return firewall.Input{}, WithHint(
			fmt.Errorf("host %s has dns = \"system\": its resolvers are on the host, and render does not reach it", h.Name),
			"name them with --resolver ADDR, or use this machine's with --resolve=local")
	}
	path := o.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	conf, err := os.ReadFile(path)
	if err != nil {
		return firewall.Input{}, WithHint(fmt.Errorf("reading this machine's resolvers: %w", err), "name the host's with --resolver ADDR")
	}
	if in.Resolvers = firewall.ParseResolvConf(string(conf)); len(in.Resolvers) == 0 {
		return firewall.Input{}, WithHint(fmt.Errorf("this machine's resolvers: %s has no nameserver line", path), "name the host's with --resolver ADDR")
	}
	return in, nil
}

// ParsePins reads the values of --address flags, each NAME=ADDR[,ADDR...]:
// a name and the addresses it stands for offline. Names are lowercased, as
// plans writes them. Each error names the flag as typed.
func ParsePins(flags []string) (map[string]firewall.Resolution, error) {
	out := map[string]firewall.Resolution{}
	from := map[string]string{} // name → the flag that pinned it
	for _, pin := range flags {
		name, list, ok := strings.Cut(pin, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.TrimSpace(list) == "" {
			return nil, WithHint(fmt.Errorf("--address %q: not NAME=ADDR", pin), "write --address NAME=ADDR[,ADDR...], e.g. --address api.example.com=203.0.113.7")
		}
		r := firewall.Resolution{Name: strings.ToLower(name)}
		if prev, ok := from[r.Name]; ok {
			return nil, WithHint(fmt.Errorf("--address %s: %s is pinned already, by --address %s", pin, r.Name, prev),
				"give all its addresses in one flag: --address NAME=ADDR,ADDR")
		}
		for _, s := range strings.Split(list, ",") {
			a, err := parseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--address %s: %w", pin, err)
			}
			r.Addrs = append(r.Addrs, a)
		}
		out[r.Name] = r
		from[r.Name] = pin
	}
	return out, nil
}

// ParseResolvers reads the values of --resolver flags, each the address of
// one of the host's resolvers, for a policy with dns = "system".
func ParseResolvers(flags []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range flags {
		a, err := parseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--resolver %s: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// parseAddr reads one address of a flag, naming the likely mistake: a
// network where an address was meant, or an address with a zone or port,
// which a rule cannot match.
func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil && strings.Contains(s, "/"):
		return netip.Addr{}, WithHint(fmt.Errorf("%q is a network, not an address", s), "give the addresses themselves, separated by commas")
	case err != nil:
		if ap, perr := netip.ParseAddrPort(s); perr == nil {
			return netip.Addr{}, WithHint(fmt.Errorf("%q is an address with a port", s), "give the address alone: "+ap.Addr().String())
		}
		return netip.Addr{}, fmt.Errorf("%q is not an address", s)
	case a.Zone() != "":
		return netip.Addr{}, WithHint(fmt.Errorf("%q has a zone, which a rule cannot match", s), "give the address alone: "+a.WithZone("").String())
	}
	return a.Unmap(), nil
}
