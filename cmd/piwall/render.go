package main

import (
	"context"
	"errors"
	"fmt"
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
	off := modules.Offline{Local: *resolve == "local", Resolve: runner.LocalResolver{}.Resolve}
	if off.Pins, err = modules.ParsePins(pins); err != nil {
		return err
	}
	if off.Resolvers, err = modules.ParseResolvers(resolvers); err != nil {
		return err
	}
	in, err := off.Input(ctx, h)
	if err != nil {
		return err
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
	if len(d.Sets) > 0 {
		fmt.Fprintf(std.out, "# piwall render: host %s, address sets (ipset restore; the host loads them before the rules and re-resolves their names every %s)\n", h.Name, d.Refresh)
		for _, s := range d.Sets {
			fmt.Fprintf(std.out, "# %s: %s, %s\n", s.Name, s.V4, s.V6)
		}
		fmt.Fprint(std.out, d.SetsText())
	}
	return nil
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
