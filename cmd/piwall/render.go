package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
)

func runRender(ctx context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var pf planFlags
	pf.register(fs)
	host := fs.String("host", "", "the host (its label, `NAME`) whose rulesets to print (required)")
	resolve := fs.String("resolve", "none", "resolve DNS names offline as `MODE` says: none, or local (this machine's resolver)")
	var pins, resolvers listFlag
	fs.Var(&pins, "address", "pin a name to addresses: --address `NAME=ADDR[,ADDR...]` (repeatable)")
	fs.Var(&resolvers, "resolver", "`ADDR` of a resolver of the host, for dns = \"system\" (repeatable)")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path, err := planPath(positional)
	if err != nil {
		return err
	}
	if *host == "" {
		return modules.WithHint(errors.New("which host?"), "--host NAME")
	}
	if *resolve != "none" && *resolve != "local" {
		return fmt.Errorf("--resolve=%s: want none or local", *resolve)
	}
	p, diags := plans.Load(path, pf.options())
	writeDiagnostics(std.errOut, p.Files, diags, pf.noColor)
	if diags.HasErrors() {
		return errDiagnostics
	}
	h := p.Host(*host)
	if h == nil {
		var names []string
		for _, h := range p.Hosts {
			names = append(names, h.Name)
		}
		return fmt.Errorf("the plan has no host %q; it has %s", *host, strings.Join(names, ", "))
	}
	in := firewall.Input{Policy: h.Policy, Names: map[string]firewall.Resolution{}}
	pinned, err := parsePins(pins)
	if err != nil {
		return err
	}
	var unresolved []string
	for _, name := range firewall.Names(h.Policy) {
		if r, ok := pinned[name]; ok {
			in.Names[name] = r
			continue
		}
		if *resolve == "local" {
			r, err := runner.LocalResolver{}.Resolve(ctx, name)
			if err != nil {
				return modules.WithHint(fmt.Errorf("host %s: %w", h.Name, err), "pin it with --address "+name+"=ADDR")
			}
			in.Names[name] = r
			continue
		}
		unresolved = append(unresolved, name)
	}
	if len(unresolved) > 0 {
		return fmt.Errorf("host %s: names are resolved on the host when piwall plans; offline, resolve %s with --resolve=local or pin them with --address NAME=ADDR",
			h.Name, strings.Join(unresolved, ", "))
	}
	for _, r := range resolvers {
		a, err := netip.ParseAddr(r)
		if err != nil {
			return fmt.Errorf("--resolver %s: not an address", r)
		}
		in.Resolvers = append(in.Resolvers, a)
	}
	if len(in.Resolvers) == 0 && h.Policy.DNS.Mode == "system" {
		if *resolve != "local" {
			return fmt.Errorf("host %s has dns = \"system\": offline, name its resolvers with --resolver ADDR, or use this machine's with --resolve=local", h.Name)
		}
		conf, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("reading this machine's resolvers: %w", err)
		}
		in.Resolvers = firewall.ParseResolvConf(string(conf))
	}
	d, err := firewall.Compile(in)
	if err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		fmt.Fprintf(std.out, "# piwall render: host %s, %s\n", h.Name, fam)
		for _, r := range d.Names {
			fmt.Fprintf(std.out, "# %s\n", resolutionLine(r))
		}
		fmt.Fprint(std.out, d.Family(fam).Text())
	}
	return nil
}

// parsePins reads --address NAME=ADDR[,ADDR...] flags.
func parsePins(pins []string) (map[string]firewall.Resolution, error) {
	out := map[string]firewall.Resolution{}
	for _, pin := range pins {
		name, list, ok := strings.Cut(pin, "=")
		if !ok || name == "" || list == "" {
			return nil, fmt.Errorf("--address %q: write --address NAME=ADDR[,ADDR...]", pin)
		}
		r := firewall.Resolution{Name: strings.ToLower(name)}
		for _, s := range strings.Split(list, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("--address %s: %q is not an address", pin, s)
			}
			r.Addrs = append(r.Addrs, a.Unmap())
		}
		out[r.Name] = r
	}
	return out, nil
}

// resolutionLine is "name → cname → addr, addr".
func resolutionLine(r firewall.Resolution) string {
	parts := append([]string{r.Name}, r.CNAMEs...)
	var addrs []string
	for _, a := range r.Addrs {
		addrs = append(addrs, a.String())
	}
	return strings.Join(parts, " → ") + " → " + strings.Join(addrs, ", ")
}
