package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Packet is a packet as a filter table's chain sees it.
type Packet struct {
	Chain    string // INPUT, OUTPUT or FORWARD
	In, Out  string // interfaces; "" when not known, which an interface match may or may not match
	Src, Dst netip.Addr
	Proto    string // tcp, udp, icmp or ipv6-icmp
	DPort    uint16
	ICMPType int    // for icmp and ipv6-icmp
	State    string // conntrack state: NEW, ESTABLISHED or RELATED
	// TCPFlags are the flags of a tcp packet ("SYN" opens a connection);
	// nil when not known.
	TCPFlags []string
	// Sets are the members of the address sets the table matches with -m
	// set, as the host holds them; a set not listed may hold anything.
	Sets map[string][]netip.Addr
}

// Verdict is what a filter table does with a packet.
type Verdict struct {
	// Accept is true only when every way through the table accepts: a rule
	// with a match that cannot be decided may or may not match, and the
	// worse is assumed (a DROP, a REJECT or a jump that might match is
	// taken; an ACCEPT that might match is not).
	Accept bool
	// By is the line that decided, or "policy DROP".
	By string
}

// Evaluate runs p through the filter table of rs, the way the kernel would
// for what can be decided of a packet: addresses, interfaces, protocols,
// ports, icmp types, conntrack states, address types, marks (none on a
// packet just arrived), tcp flags; comments, limits, LOG and the like do
// not end its way. Each chain is followed once: the cost is linear in the
// rules.
func Evaluate(rs *Ruleset, p Packet) Verdict {
	t := LiveFilter(rs).Table("filter")
	c := t.Chain(p.Chain)
	if c == nil {
		return Verdict{Accept: false, By: "no chain " + p.Chain}
	}
	e := &evaluator{table: t, packet: p, done: map[string]ends{}}
	r := e.chain(c)
	if r.returns {
		if c.Policy != "ACCEPT" {
			r.dropBy = cmpOr(r.dropBy, "policy "+c.Policy)
		}
	}
	if r.dropBy != "" {
		return Verdict{Accept: false, By: r.dropBy}
	}
	return Verdict{Accept: true, By: cmpOr(r.acceptBy, "policy ACCEPT")}
}

// ends are the ways a chain can end for the packet: dropped (by the first
// line found that drops), accepted, or returned to its caller.
type ends struct {
	dropBy, acceptBy string
	returns          bool
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// add merges the ways of a chain called from here, but for returning.
func (e *ends) add(o ends) {
	e.dropBy = cmpOr(e.dropBy, o.dropBy)
	e.acceptBy = cmpOr(e.acceptBy, o.acceptBy)
}

type evaluator struct {
	table  *Table
	packet Packet
	done   map[string]ends // chains already followed
	busy   map[string]bool
}

type match int

const (
	matchNo match = iota
	matchYes
	matchMaybe
)

// chain follows a chain from its first rule, once: its ways are the same
// whoever jumps to it.
func (e *evaluator) chain(c *Chain) ends {
	if r, ok := e.done[c.Name]; ok {
		return r
	}
	if e.busy == nil {
		e.busy = map[string]bool{}
	}
	if e.busy[c.Name] {
		return ends{dropBy: "a loop through chain " + c.Name}
	}
	e.busy[c.Name] = true
	r := e.rules(c)
	delete(e.busy, c.Name)
	e.done[c.Name] = r
	return r
}

// rules follows the rules of c in order. A rule that matches ends the way
// unless its target lets the packet go on; one that might match adds its
// ways and the packet goes on too.
func (e *evaluator) rules(c *Chain) ends {
	var r ends
	for _, rule := range c.Rules {
		m := e.matches(rule)
		if m == matchNo {
			continue
		}
		line := rule.Line(c.Name)
		var o ends
		goOn := false
		switch target := rule.Target(); target {
		case "ACCEPT":
			o.acceptBy = line
		case "DROP", "REJECT":
			o.dropBy = line
		case "RETURN":
			o.returns = true
		case "", "LOG", "NFLOG", "MARK", "CONNMARK", "CT", "NOTRACK", "TRACE", "AUDIT":
			goOn = true // these do not end the packet's way
		default:
			sub := e.table.Chain(target)
			if sub == nil {
				o.dropBy = line // a target unknown here may end the packet
				break
			}
			o = e.chain(sub)
			if _, isGoto := rule.Option("-g"); !isGoto && o.returns {
				o.returns = false
				goOn = true // back from the jump, on to the next rule
			}
		}
		r.add(o)
		r.returns = r.returns || o.returns
		if m == matchYes && !goOn {
			return r
		}
	}
	r.returns = true
	return r
}

// matches says whether the packet matches every match of r.
func (e *evaluator) matches(r *Rule) match {
	p := e.packet
	args := r.Args()
	result := matchYes
	negate := false
	for i := 0; i < len(args); i++ {
		opt := args[i]
		if opt == "!" {
			negate = true
			continue
		}
		val := ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		var m match
		switch opt {
		case "-j", "-g":
			return result // the target and its options follow
		case "-m":
			i++
			continue
		case "--comment", "--limit", "--limit-burst":
			i++
			continue
		case "-s":
			m = prefixMatch(val, p.Src)
		case "-d":
			m = prefixMatch(val, p.Dst)
		case "-i":
			m = ifaceMatch(val, p.In)
		case "-o":
			m = ifaceMatch(val, p.Out)
		case "-p":
			m = boolMatch(val == "all" || val == p.Proto || (val == "icmpv6" && p.Proto == "ipv6-icmp"))
		case "--dport", "--dports", "--destination-port", "--destination-ports":
			m = dportMatch(val, p.DPort)
		case "--icmp-type", "--icmpv6-type":
			m = icmpMatch(val, p.ICMPType)
		case "--ctstate", "--state":
			m = boolMatch(contains(strings.Split(val, ","), p.State))
		case "--src-type":
			m = addrTypeMatch(val, p.Chain == "OUTPUT")
		case "--dst-type":
			m = addrTypeMatch(val, p.Chain == "INPUT")
		case "--match-set":
			if i+2 >= len(args) {
				return matchMaybe
			}
			m = setMatch(p.Sets, val, args[i+2], p.Src, p.Dst)
			i++
		case "--mark":
			// A packet just arrived or just made carries no mark.
			m = markMatch(val)
		case "--syn":
			m = flagsMatch("FIN,SYN,RST,ACK", "SYN", p.TCPFlags)
			i-- // no value
		case "--tcp-flags":
			if i+2 >= len(args) {
				return matchMaybe
			}
			m = flagsMatch(val, args[i+2], p.TCPFlags)
			i++
		default:
			return matchMaybe // a match this evaluator does not know
		}
		i++
		if negate {
			m = not(m)
			negate = false
		}
		switch {
		case m == matchNo:
			return matchNo
		case m == matchMaybe:
			result = matchMaybe
		}
	}
	return result
}

// setMatch matches the packet's source or destination (dirs "src" or
// "dst"; the first of a list) against a set's members.
func setMatch(sets map[string][]netip.Addr, set, dirs string, src, dst netip.Addr) match {
	members, known := sets[set]
	if !known {
		return matchMaybe
	}
	a := src
	if d, _, _ := strings.Cut(dirs, ","); d == "dst" {
		a = dst
	} else if d != "src" {
		return matchMaybe
	}
	return boolMatch(slices.Contains(members, a.Unmap()))
}

func boolMatch(b bool) match {
	if b {
		return matchYes
	}
	return matchNo
}

func not(m match) match {
	switch m {
	case matchYes:
		return matchNo
	case matchNo:
		return matchYes
	}
	return matchMaybe
}

func prefixMatch(s string, a netip.Addr) match {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		addr, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return matchMaybe
		}
		pfx = netip.PrefixFrom(addr, addr.BitLen())
	}
	return boolMatch(a.IsValid() && pfx.Contains(a))
}

func ifaceMatch(name, iface string) match {
	if iface == "" {
		return matchMaybe
	}
	if strings.HasSuffix(name, "+") {
		return boolMatch(strings.HasPrefix(iface, strings.TrimSuffix(name, "+")))
	}
	return boolMatch(name == iface)
}

func dportMatch(spec string, port uint16) match {
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		from, err1 := strconv.Atoi(lo)
		to := from
		var err2 error
		if isRange {
			to, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil {
			return matchMaybe
		}
		if int(port) >= from && int(port) <= to {
			return matchYes
		}
	}
	return matchNo
}

var icmpNames = map[string]int{
	"echo-request": 8, "echo-reply": 0, "destination-unreachable": 3, "time-exceeded": 11,
	"router-solicitation": 133, "router-advertisement": 134, "neighbour-solicitation": 135,
	"neighbor-solicitation": 135, "neighbour-advertisement": 136, "neighbor-advertisement": 136,
}

func icmpMatch(spec string, typ int) match {
	t, _, _ := strings.Cut(spec, "/")
	n, err := strconv.Atoi(t)
	if err != nil {
		var ok bool
		if n, ok = icmpNames[t]; !ok {
			return matchMaybe
		}
	}
	return boolMatch(n == typ)
}

// addrTypeMatch is -m addrtype for an address of the packet: the host's
// own (local) or the operator's, both unicast.
func addrTypeMatch(types string, local bool) match {
	for _, t := range strings.Split(types, ",") {
		switch t {
		case "UNICAST":
			return matchYes
		case "LOCAL":
			if local {
				return matchYes
			}
		case "BROADCAST", "MULTICAST", "ANYCAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT":
		default:
			return matchMaybe
		}
	}
	return matchNo
}

// markMatch is -m mark --mark VALUE[/MASK] for a packet without a mark.
func markMatch(spec string) match {
	v, _, _ := strings.Cut(spec, "/")
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return matchMaybe
	}
	return boolMatch(n == 0)
}

// flagsMatch is --tcp-flags MASK COMP: of the flags in MASK, exactly those
// in COMP are set.
func flagsMatch(mask, comp string, flags []string) match {
	if flags == nil {
		return matchMaybe
	}
	expand := func(s string) []string {
		if s == "ALL" {
			return []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG"}
		}
		if s == "NONE" {
			return nil
		}
		return strings.Split(s, ",")
	}
	want := expand(comp)
	for _, f := range expand(mask) {
		if contains(flags, f) != contains(want, f) {
			return matchNo
		}
	}
	return matchYes
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CheckSSH returns nil when rulesets rs4 and rs6 admit a new SSH
// connection from operator to host on port, and the host's replies to it;
// otherwise an error saying which rule or policy would stop it. This is the
// static lockout check piwall makes before it applies anything.
//
// iface is the host's interface the connection arrives on and its replies
// leave by ("" when not known: every interface match may then match);
// sets hold the members of the address sets the rules match, a name's
// set the addresses it has now.
func CheckSSH(rs4, rs6 *Ruleset, operator, host netip.Addr, port uint16, iface string, sets map[string][]netip.Addr) error {
	operator, host = operator.Unmap(), host.Unmap()
	rs := rs4
	if !operator.Is4() {
		rs = rs6
	}
	in := Packet{Chain: "INPUT", In: iface, Src: operator, Dst: host, Proto: "tcp", DPort: port, State: "NEW", TCPFlags: []string{"SYN"}, Sets: sets}
	if v := Evaluate(rs, in); !v.Accept {
		return fmt.Errorf("a new SSH connection from %s to tcp/%d would be dropped (by %s)", operator, port, v.By)
	}
	out := Packet{Chain: "OUTPUT", Out: iface, Src: host, Dst: operator, Proto: "tcp", State: "ESTABLISHED", Sets: sets}
	if v := Evaluate(rs, out); !v.Accept {
		return fmt.Errorf("the replies of SSH on tcp/%d to %s would be dropped (by %s)", port, operator, v.By)
	}
	return nil
}
