package plans

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

var chainPatternRE = regexp.MustCompile(`^[A-Za-z0-9_.*?-]{1,28}$`)

// link checks the references between blocks (a host's groups and
// allowlists, a group's allowlists) and merges each host's allowlists into
// its Policy. Several allowlists on one host add up; a scalar setting (dns,
// ping, log_drops) written differently in two of them is a conflict that
// names both places.
func (p *Plan) link() hcl.Diagnostics {
	var diags hcl.Diagnostics
	var allowlistNames, groupNames []string
	for _, a := range p.Allowlists {
		allowlistNames = append(allowlistNames, a.Name)
	}
	for _, g := range p.Groups {
		groupNames = append(groupNames, g.Name)
	}
	unknown := func(kind string, ref Value[string], known []string) *hcl.Diagnostic {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Unknown %s", kind),
			Detail:  fmt.Sprintf("No %s %q is defined%s.", kind, ref.V, suggest(ref.V, known)),
			Subject: ref.Range.Ptr()}
	}
	for _, g := range p.Groups {
		for _, ref := range g.Allowlists {
			if p.Allowlist(ref.V) == nil {
				diags = append(diags, unknown("allowlist", ref, allowlistNames))
			}
		}
	}
	for _, h := range p.Hosts {
		var refs []Value[string]
		bad := false // an unknown name, reported here
		for _, gref := range h.Groups {
			g := p.Group(gref.V)
			if g == nil {
				diags = append(diags, unknown("group", gref, groupNames))
				bad = true
				continue
			}
			h.badRefs = h.badRefs || g.badRefs
			for _, ref := range g.Allowlists {
				if p.Allowlist(ref.V) == nil {
					bad = true // reported with the group
					continue
				}
				refs = append(refs, ref)
			}
		}
		for _, ref := range h.Allowlists {
			if p.Allowlist(ref.V) == nil {
				diags = append(diags, unknown("allowlist", ref, allowlistNames))
				bad = true
				continue
			}
			refs = append(refs, ref)
		}
		// Each host is checked, whatever the hosts before it got: one run
		// reports every host's mistakes.
		if bad {
			continue
		}
		if len(refs) == 0 && h.badRefs {
			continue // its groups or allowlists have errors, reported already
		}
		if len(refs) == 0 && h.ansible {
			groups := "it is in no group"
			if len(h.ansibleGroups) > 0 {
				groups = "its groups are " + strings.Join(h.ansibleGroups, ", ")
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Host without allowlists",
				Detail: fmt.Sprintf("Host %q of the Ansible inventory gets no allowlist, so it would drop everything, SSH included (%s): "+
					"give one of its groups allowlists with a group block of the same name, like group \"kiosk\" { allowlists = [\"kiosk\"] }, "+
					"or leave the host out with the ansible_inventory block's groups.", h.Name, groups),
				Subject: h.DeclRange.Ptr()})
			continue
		}
		if len(refs) == 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Host without allowlists",
				Detail:  fmt.Sprintf("Host %q gets no allowlist, so it would drop everything, SSH included: give it allowlists = [...] or groups = [...].", h.Name),
				Subject: h.DeclRange.Ptr()})
			continue
		}
		pol, d := p.merge(refs)
		diags = append(diags, d...)
		pol.DNSRefresh = DefaultDNSRefresh
		for _, v := range []*Value[time.Duration]{h.Connection.DNSRefresh, p.Defaults.DNSRefresh} {
			if v != nil {
				pol.DNSRefresh = v.V
				break
			}
		}
		h.Policy = pol
	}
	return diags
}

// merge adds up the allowlists refs name, each once, in order.
func (p *Plan) merge(refs []Value[string]) (*Policy, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	pol := &Policy{DNS: DNS{Mode: "system"}}
	var dns *Value[DNS]
	var ping, logDrops, audit *Value[bool]
	switches := make([]*Value[bool], len((&Allowlist{}).switches()))
	seen := map[string]bool{}
	keep := map[string]bool{}
	coexist := map[string]bool{}
	addOwners := func(vs []Value[string]) {
		for _, o := range vs {
			if !coexist[o.V] {
				coexist[o.V] = true
				pol.Coexist = append(pol.Coexist, o.V)
			}
		}
	}
	addOwners(p.Coexist)
	for _, ref := range refs {
		if seen[ref.V] {
			continue
		}
		seen[ref.V] = true
		a := p.Allowlist(ref.V)
		pol.Allowlists = append(pol.Allowlists, a.Name)
		pol.Inbound = append(pol.Inbound, a.Inbound...)
		pol.Outbound = append(pol.Outbound, a.Outbound...)
		pol.ExpectBlocked = append(pol.ExpectBlocked, a.ExpectBlocked...)
		addOwners(a.Coexist)
		for _, k := range a.KeepChains {
			if !keep[k.V] {
				keep[k.V] = true
				pol.KeepChains = append(pol.KeepChains, k.V)
			}
		}
		if a.DNS != nil {
			if dns != nil && !sameDNS(dns.V, a.DNS.V) {
				diags = append(diags, conflict("dns", a.DNS.Range, dns.Range))
			} else if dns == nil {
				dns = a.DNS
			}
		}
		diags = append(diags, pickBool("ping", a.Ping, &ping)...)
		diags = append(diags, pickBool("log_drops", a.LogDrops, &logDrops)...)
		diags = append(diags, pickBool("mode", a.Audit, &audit)...)
		for i, sw := range a.switches() {
			diags = append(diags, pickBool(sw.name, *sw.v, &switches[i])...)
		}
	}
	diags = append(diags, contradictions(pol)...)
	if dns != nil {
		pol.DNS = dns.V
	}
	pol.Ping = ping != nil && ping.V
	pol.LogDrops = logDrops != nil && logDrops.V
	pol.Audit = audit != nil && audit.V
	for i, k := range []*Switch{&pol.Keep.DHCP, &pol.Keep.DHCPv6, &pol.Keep.MLD, &pol.Keep.MDNS} {
		switch {
		case switches[i] == nil:
		case switches[i].V:
			*k = On
		default:
			*k = Off
		}
	}
	return pol, diags
}

// pickBool takes v as the merged setting name unless one is set: written
// differently in two allowlists, it is a conflict.
func pickBool(name string, v *Value[bool], cur **Value[bool]) hcl.Diagnostics {
	switch {
	case v == nil:
	case *cur == nil:
		*cur = v
	case (*cur).V != v.V:
		return hcl.Diagnostics{conflict(name, v.Range, (*cur).Range)}
	}
	return nil
}

func sameDNS(a, b DNS) bool {
	if a.Mode != b.Mode || len(a.Resolvers) != len(b.Resolvers) {
		return false
	}
	for i := range a.Resolvers {
		if a.Resolvers[i] != b.Resolvers[i] {
			return false
		}
	}
	return true
}

func conflict(setting string, here, there hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Conflicting %s settings", setting),
		Detail: fmt.Sprintf("A host gets two allowlists that set %s differently: here and at %s. "+
			"Set it in one of them only, or make them agree.", setting, there),
		Subject: here.Ptr()}
}

// contradictions are the expect_blocked peers and ports of pol that one of
// its outbound entries allows: check would fail on every host that gets
// both, whatever the host does.
func contradictions(pol *Policy) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, x := range pol.ExpectBlocked {
		for _, peer := range x.Peers {
			for _, o := range pol.Outbound {
				if !slices.ContainsFunc(o.Peers, func(op Endpoint) bool { return peerCovers(op, peer) }) || !portsOverlap(o.Ports, x.Ports) {
					continue
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Expected blocked, but allowed",
					Detail: fmt.Sprintf("expect_blocked names %s%s, but the outbound entry at %s allows it, so piwall check would fail on every host that gets both. "+
						"Remove it from one of them, or narrow the ports.", peer, portsPhrase(x.Ports), o.DeclRange),
					Subject: peer.Range.Ptr()})
				break
			}
		}
	}
	return diags
}

// peerCovers reports whether an entry allowing peer a allows every address of
// b: the same name, or a network that holds b's.
func peerCovers(a, b Endpoint) bool {
	if a.Name != "" || b.Name != "" {
		return a.Name != "" && strings.EqualFold(strings.TrimSuffix(a.Name, "."), strings.TrimSuffix(b.Name, "."))
	}
	return a.Prefix.Addr().Is4() == b.Prefix.Addr().Is4() && a.Prefix.Bits() <= b.Prefix.Bits() && a.Prefix.Contains(b.Prefix.Addr())
}

// portsOverlap reports whether some packet matches a port of both lists;
// an empty list is every protocol.
func portsOverlap(a, b []Port) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, p := range a {
		for _, q := range b {
			if p.Proto == q.Proto && p.From <= q.To && q.From <= p.To {
				return true
			}
		}
	}
	return false
}
