package firewall

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piwall/piwall/plans"
)

// Resolution is what a DNS name became: the CNAME chain it went through (in
// order, not counting the name itself) and the addresses at its end.
type Resolution struct {
	Name   string       `json:"name"`
	CNAMEs []string     `json:"cnames,omitempty"`
	Addrs  []netip.Addr `json:"addrs"`
}

// SortAddrs sorts addresses in the order a Resolution holds them: IPv4
// first, then each family by address.
func SortAddrs(addrs []netip.Addr) {
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		if a.Is4() != b.Is4() {
			if a.Is4() {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
}

// Input is everything a host's desired rulesets depend on. Names are
// resolved and resolvers read before compiling, by whoever can reach the
// host (or, offline, this machine): compiling itself does no I/O.
type Input struct {
	Policy *plans.Policy
	// Names holds a Resolution for every name in Names(Policy).
	Names map[string]Resolution
	// Resolvers are the host's own resolvers (its /etc/resolv.conf), used
	// when the policy says dns = "system".
	Resolvers []netip.Addr
	// Services are the host's own network services kept working beside
	// the policy's entries (as the plan's switches and the host's facts
	// decide).
	Services Services
}

// Services are the host's own network services the rulesets keep working,
// as ufw's before.rules do: the day a DHCP lease is renewed, or a .local
// name is asked for, comes long after the dead-man.
type Services struct {
	DHCP   bool // IPv4: udp/68 → udp/67, and the server's answers
	DHCPv6 bool // udp/546 → udp/547, and the answers
	MLD    bool // multicast listener queries in (from link-local), reports out
	MDNS   bool // udp/5353 with 224.0.0.251 and ff02::fb, and unicast answers
}

// Desired is what a host should have.
type Desired struct {
	V4, V6 *Ruleset
	Names  []Resolution // the names the rulesets use, in the order written
	// Sets are the address sets the rulesets match names by, when the host
	// refreshes them (dns_refresh); empty when the names' addresses are
	// compiled into the rules.
	Sets []NameSet
	// Refresh is how often the host re-resolves the names of Sets.
	Refresh time.Duration
}

// Grace is how long an address a name no longer answers with stays in its
// set: three refreshes. Round-robin and CDN answers rotate within a
// record's TTL (seconds to minutes), and a program that resolved the name
// keeps using its answer for about as long; three refreshes also ride out
// two lookups that answered with only part of a pool.
func (d *Desired) Grace() time.Duration { return 3 * d.Refresh }

// NameSet is the pair of address sets (ipset hash:ip, one a family) that a
// DNS name of the plan becomes on a host that refreshes its names. The
// rules match the set, never its addresses, so the rules stay the same
// while the name moves and the host's refresher updates the set.
type NameSet struct {
	Name   string `json:"name"`
	V4, V6 string // the sets' names on the host
}

// SetName is the name of the address set that holds name's addresses of
// one family on a host: piwall's prefix, a digest of the name (a set name
// has at most 31 bytes, a DNS name up to 253) and the family.
func SetName(name string, fam Family) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSuffix(name, "."))))
	return fmt.Sprintf("piwall-%x-%d", sum[:6], fam)
}

// SetPrefix starts the name of every set piwall makes.
const SetPrefix = "piwall-"

// Set returns the set of one family of a NameSet.
func (n NameSet) Set(f Family) string {
	if f == IPv6 {
		return n.V6
	}
	return n.V4
}

// SetsText is the document `ipset restore` reads to make d's sets, each
// holding the addresses its name has now: what the host loads before the
// rules that match them, and what render shows beside the rules. A set
// holds at most SetMaxElem addresses: a name's answers over the refresh's
// grace window, not a network.
func (d *Desired) SetsText() string {
	var b strings.Builder
	members := d.SetMembers()
	for _, s := range d.Sets {
		for _, fam := range []Family{IPv4, IPv6} {
			set, inet := s.Set(fam), "inet"
			if fam == IPv6 {
				inet = "inet6"
			}
			fmt.Fprintf(&b, "create %s hash:ip family %s hashsize 64 maxelem %d\n", set, inet, SetMaxElem)
			for _, a := range members[set] {
				fmt.Fprintf(&b, "add %s %s\n", set, a)
			}
		}
	}
	return b.String()
}

// ParseSetMembers reads the members of each set an `ipset restore`
// document (SetsText, or what ipset save printed) makes: its "create" and
// "add" lines; it ignores every other line.
func ParseSetMembers(text string) map[string][]netip.Addr {
	m := map[string][]netip.Addr{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "create":
			if _, ok := m[f[1]]; !ok {
				m[f[1]] = nil
			}
		case len(f) >= 3 && f[0] == "add":
			if a, err := netip.ParseAddr(f[2]); err == nil {
				m[f[1]] = append(m[f[1]], a.Unmap())
			}
		}
	}
	return m
}

// SetMaxElem bounds a name's set.
const SetMaxElem = 1024

// SetMembers maps each set of d to the addresses its name has now, for the
// lockout check: an inbound name admits what it resolves to now, no more.
func (d *Desired) SetMembers() map[string][]netip.Addr {
	m := map[string][]netip.Addr{}
	for _, s := range d.Sets {
		m[s.V4], m[s.V6] = nil, nil
		for _, r := range d.Names {
			if r.Name != s.Name {
				continue
			}
			for _, a := range r.Addrs {
				if set := s.Set(family(a)); !slices.Contains(m[set], a.Unmap()) {
					m[set] = append(m[set], a.Unmap())
				}
			}
		}
	}
	return m
}

// Family returns the desired ruleset of one family.
func (d *Desired) Family(f Family) *Ruleset {
	if f == IPv6 {
		return d.V6
	}
	return d.V4
}

// Names lists the DNS names a policy uses, each once, in the order written.
func Names(pol *plans.Policy) []string {
	var names []string
	seen := map[string]bool{}
	for _, e := range entries(pol) {
		for _, p := range e.Peers {
			if p.Name != "" && !seen[p.Name] {
				seen[p.Name] = true
				names = append(names, p.Name)
			}
		}
	}
	return names
}

func entries(pol *plans.Policy) []*plans.Entry {
	return append(append([]*plans.Entry{}, pol.Inbound...), pol.Outbound...)
}

// Rule comments, for the rules every ruleset has.
const (
	commentLoopback  = "piwall: loopback"
	commentReplies   = "piwall: replies"
	commentDNS       = "piwall: dns"
	commentNeighbour = "piwall: neighbour discovery"
	commentLog       = "piwall: log drops"
	commentAudit     = "piwall: audit"
	commentDHCP      = "piwall: dhcp"
	commentDHCPv6    = "piwall: dhcpv6"
	commentMLD       = "piwall: mld"
	commentMDNS      = "piwall: mdns"
	logLimit         = "5/min"
	// auditLogLimit: audit mode logs what it would drop for logs
	// --suggest, a new connection's first packet each; a busy Pi still
	// cannot fill its log.
	auditLogLimit = "1/sec" // as iptables-save prints 60/min
)

// Compile builds the desired filter tables of a host for IPv4 and IPv6.
//
// They are piwall's part of the filter table (see Foreign): each chain
// holds loopback and replies to the host's own connections, then (IPv6)
// neighbour discovery, then DNS, then the allowlists' entries in the order
// written, then ping, then the rate-limited LOG. Policies are DROP on
// INPUT, FORWARD and OUTPUT. On the host, others' rules of the built-in
// chains come first (Foreign.Merge), and the whole part is loaded in one
// iptables-restore, so there is never a moment with the DROP policy and
// without its exceptions.
func Compile(in Input) (*Desired, error) {
	pol := in.Policy
	var errs []error
	d := &Desired{}
	for _, name := range Names(pol) {
		r, ok := in.Names[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: not resolved", name))
		case len(r.Addrs) == 0:
			errs = append(errs, fmt.Errorf("%s: the name has no addresses", name))
		default:
			d.Names = append(d.Names, r)
		}
	}
	resolvers, err := dnsResolvers(pol.DNS, in.Resolvers)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if pol.DNSRefresh > 0 {
		d.Refresh = pol.DNSRefresh
		for _, r := range d.Names {
			d.Sets = append(d.Sets, NameSet{Name: r.Name, V4: SetName(r.Name, IPv4), V6: SetName(r.Name, IPv6)})
		}
	}
	for _, fam := range []Family{IPv4, IPv6} {
		rs, err := compileFamily(fam, in, resolvers, pol.DNSRefresh > 0)
		if err != nil {
			return nil, err
		}
		if fam == IPv4 {
			d.V4 = rs
		} else {
			d.V6 = rs
		}
	}
	return d, nil
}

func dnsResolvers(dns plans.DNS, system []netip.Addr) ([]netip.Addr, error) {
	switch dns.Mode {
	case "none":
		return nil, nil
	case "list":
		return dns.Resolvers, nil
	}
	if len(system) == 0 {
		return nil, errors.New(`dns = "system", but the host's resolvers are unknown (its /etc/resolv.conf names none): list them with dns = ["..."], or set dns = "none"`)
	}
	return system, nil
}

// chainBuilder collects the rules of one family's filter table.
type chainBuilder struct {
	fam    Family
	chains map[string]*Chain
}

func (b *chainBuilder) add(chain string, tokens ...string) {
	c := b.chains[chain]
	for _, r := range c.Rules {
		if r.Line(chain) == (&Rule{Tokens: tokens}).Line(chain) {
			return // the same rule twice adds nothing
		}
	}
	c.Rules = append(c.Rules, &Rule{Tokens: tokens})
}

func compileFamily(fam Family, in Input, resolvers []netip.Addr, sets bool) (*Ruleset, error) {
	pol := in.Policy
	b := &chainBuilder{fam: fam, chains: map[string]*Chain{
		"INPUT": {Name: "INPUT", Policy: "DROP"}, "FORWARD": {Name: "FORWARD", Policy: "DROP"}, "OUTPUT": {Name: "OUTPUT", Policy: "DROP"},
	}}
	b.add("INPUT", "-i", "lo", "-m", "comment", "--comment", saveString(commentLoopback), "-j", "ACCEPT")
	b.add("INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-m", "comment", "--comment", saveString(commentReplies), "-j", "ACCEPT")
	b.add("OUTPUT", "-o", "lo", "-m", "comment", "--comment", saveString(commentLoopback), "-j", "ACCEPT")
	b.add("OUTPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-m", "comment", "--comment", saveString(commentReplies), "-j", "ACCEPT")
	if fam == IPv6 {
		// Without neighbour discovery IPv6 cannot even find the next hop;
		// router solicitation and advertisement give it its routes.
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			for _, t := range []string{"133", "134", "135", "136"} {
				b.add(chain, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", t, "-m", "comment", "--comment", saveString(commentNeighbour), "-j", "ACCEPT")
			}
		}
	}
	b.services(in.Services)
	for _, r := range resolvers {
		if family(r) != fam {
			continue
		}
		for _, proto := range []string{"udp", "tcp"} {
			b.add("OUTPUT", "-d", hostPrefix(r), "-p", proto, "-m", proto, "--dport", "53", "-m", "comment", "--comment", saveString(commentDNS), "-j", "ACCEPT")
		}
	}
	for _, e := range entries(pol) {
		chain, peerFlag := "INPUT", "-s"
		if e.Direction == plans.Outbound {
			chain, peerFlag = "OUTPUT", "-d"
		}
		for _, peer := range e.Peers {
			comment := saveString(entryComment(e, peer))
			for _, m := range peerMatches(peer, in.Names, fam, peerFlag, sets) {
				if len(e.Ports) == 0 {
					b.add(chain, m.with(nil, "-m", "comment", "--comment", comment, "-j", "ACCEPT")...)
				}
				for _, port := range e.Ports {
					b.add(chain, m.with(portMatch(fam, port), "-m", "comment", "--comment", comment, "-j", "ACCEPT")...)
				}
			}
		}
	}
	if pol.Ping {
		for _, e := range entries(pol) {
			chain, peerFlag := "INPUT", "-s"
			if e.Direction == plans.Outbound {
				chain, peerFlag = "OUTPUT", "-d"
			}
			for _, peer := range e.Peers {
				for _, m := range peerMatches(peer, in.Names, fam, peerFlag, sets) {
					b.add(chain, m.with(echoRequest(fam), "-m", "comment", "--comment", saveString(entryComment(e, peer)), "-j", "ACCEPT")...)
				}
			}
		}
	}
	if pol.Audit {
		// Audit mode: what no rule accepted is logged as what the rules
		// would drop, and accepted. The policies stay DROP, so that the
		// rules are the enforcing ones but for these last two lines, and
		// switching to enforce removes them only. The log is what logs
		// --suggest reads, so it takes more lines than log_drops.
		for _, c := range []struct{ chain, dir string }{{"INPUT", "in"}, {"OUTPUT", "out"}} {
			b.add(c.chain, "-m", "limit", "--limit", auditLogLimit, "-m", "comment", "--comment", saveString(commentAudit), "-j", "LOG", "--log-prefix", saveString("piwall would drop "+c.dir+": "))
			b.add(c.chain, "-m", "comment", "--comment", saveString(commentAudit), "-j", "ACCEPT")
		}
	} else if pol.LogDrops {
		// Last in the chain: only what no rule accepted is logged, then
		// dropped by the policy.
		b.add("INPUT", "-m", "limit", "--limit", logLimit, "-m", "comment", "--comment", saveString(commentLog), "-j", "LOG", "--log-prefix", saveString("piwall drop in: "))
		b.add("OUTPUT", "-m", "limit", "--limit", logLimit, "-m", "comment", "--comment", saveString(commentLog), "-j", "LOG", "--log-prefix", saveString("piwall drop out: "))
	}
	t := &Table{Name: "filter", Chains: []*Chain{b.chains["INPUT"], b.chains["FORWARD"], b.chains["OUTPUT"]}}
	return &Ruleset{Tables: []*Table{t}}, nil
}

// services adds the rules of the host's own network services.
func (b *chainBuilder) services(s Services) {
	udp := func(chain, comment string, match ...string) {
		b.add(chain, append(match, "-m", "comment", "--comment", saveString(comment), "-j", "ACCEPT")...)
	}
	if s.DHCP && b.fam == IPv4 {
		udp("OUTPUT", commentDHCP, "-p", "udp", "-m", "udp", "--sport", "68", "--dport", "67")
		udp("INPUT", commentDHCP, "-p", "udp", "-m", "udp", "--sport", "67", "--dport", "68")
	}
	if s.DHCPv6 && b.fam == IPv6 {
		udp("OUTPUT", commentDHCPv6, "-p", "udp", "-m", "udp", "--sport", "546", "--dport", "547")
		udp("INPUT", commentDHCPv6, "-p", "udp", "-m", "udp", "--sport", "547", "--dport", "546")
	}
	if s.MLD && b.fam == IPv6 {
		udp("INPUT", commentMLD, "-s", "fe80::/10", "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", "130")
		for _, t := range []string{"131", "132", "143"} {
			udp("OUTPUT", commentMLD, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", t)
		}
	}
	if s.MDNS {
		group := "224.0.0.251/32"
		if b.fam == IPv6 {
			group = "ff02::fb/128"
		}
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			udp(chain, commentMDNS, "-d", group, "-p", "udp", "-m", "udp", "--dport", "5353")
			// Answers to a query that asked for them unicast.
			udp(chain, commentMDNS, "-p", "udp", "-m", "udp", "--sport", "5353", "--dport", "5353")
		}
	}
}

// entryComment names the allowlist entry and the peer a rule comes from,
// within iptables' 255 bytes for a comment.
func entryComment(e *plans.Entry, peer plans.Endpoint) string {
	c := fmt.Sprintf("piwall: %s %s %d: %s", e.Allowlist, e.Direction, e.Index, peer)
	if len(c) > 255 {
		c = c[:252] + "..."
	}
	return c
}

// peerSel is how a rule picks a peer: by address (-s or -d, which
// iptables-save prints before the protocol) or by address set (-m set,
// which it prints after the protocol, among the other matches).
type peerSel struct {
	addr []string // -s/-d ADDR, or nothing for every address
	set  []string // -m set --match-set SET src|dst
}

// with is the rule's tokens: the peer match, the protocol match proto
// (-p first), then rest.
func (m peerSel) with(proto []string, rest ...string) []string {
	out := append([]string{}, m.addr...)
	if len(proto) >= 2 && proto[0] == "-p" {
		out = append(out, proto[:2]...)
		proto = proto[2:]
	}
	out = append(out, m.set...)
	out = append(out, proto...)
	return append(out, rest...)
}

// peerMatches are the matches of a peer in one family: its network, as
// iptables-save prints it (addresses with /32 or /128), a name's
// addresses, or, where the host refreshes names, the name's set.
func peerMatches(peer plans.Endpoint, names map[string]Resolution, fam Family, flag string, sets bool) []peerSel {
	if peer.Name == "" {
		if family(peer.Prefix.Addr()) != fam {
			return nil
		}
		return []peerSel{{addr: peerMatch(flag, prefixString(peer.Prefix))}}
	}
	if sets {
		dir := "dst"
		if flag == "-s" {
			dir = "src"
		}
		return []peerSel{{set: []string{"-m", "set", "--match-set", SetName(peer.Name, fam), dir}}}
	}
	var out []peerSel
	for _, a := range names[peer.Name].Addrs {
		if family(a) == fam {
			out = append(out, peerSel{addr: peerMatch(flag, hostPrefix(a))})
		}
	}
	return out
}

func portMatch(fam Family, p plans.Port) []string {
	if p.Proto == "icmp" {
		if fam == IPv6 {
			return []string{"-p", "ipv6-icmp"}
		}
		return []string{"-p", "icmp"}
	}
	ports := strconv.Itoa(int(p.From))
	if p.To != p.From {
		ports += ":" + strconv.Itoa(int(p.To))
	}
	return []string{"-p", p.Proto, "-m", p.Proto, "--dport", ports}
}

func echoRequest(fam Family) []string {
	if fam == IPv6 {
		return []string{"-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", "128"}
	}
	return []string{"-p", "icmp", "-m", "icmp", "--icmp-type", "8"}
}

func family(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

func hostPrefix(a netip.Addr) string {
	a = a.Unmap()
	return prefixString(netip.PrefixFrom(a, a.BitLen()))
}

// prefixString is a network as iptables-save prints it. Go and glibc's
// inet_ntop write IPv6 the same way but for one form: an address whose
// first 96 bits are zero and the next 16 are not (IPv4-compatible), which
// glibc ends with a dotted quad (::1.2.3.4, where Go writes ::102:304).
func prefixString(p netip.Prefix) string {
	if b := p.Addr().As16(); p.Addr().Is6() && [12]byte(b[:12]) == [12]byte{} && (b[12] != 0 || b[13] != 0) {
		return "::" + netip.AddrFrom4([4]byte(b[12:])).String() + "/" + strconv.Itoa(p.Bits())
	}
	return p.String()
}

// peerMatch is the -s or -d match of a peer network. iptables-save prints
// none for 0.0.0.0/0 and ::/0, which match every address, so neither does
// the compiler.
func peerMatch(flag, prefix string) []string {
	if strings.HasSuffix(prefix, "/0") {
		return nil
	}
	return []string{flag, prefix}
}
