package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Packet is a packet as a filter table's chain sees it.
type Packet struct {
	Chain    string // INPUT, OUTPUT or FORWARD
	In, Out  string // interfaces: "lo" for loopback, "" for any other
	Src, Dst netip.Addr
	Proto    string // tcp, udp, icmp or ipv6-icmp
	DPort    uint16
	ICMPType int    // for icmp and ipv6-icmp
	State    string // conntrack state: NEW, ESTABLISHED or RELATED
}

// Verdict is what a filter table does with a packet.
type Verdict struct {
	// Accept is true only when every way through the table accepts: a rule
	// with a match the evaluator does not know may or may not match, and
	// both possibilities are followed.
	Accept bool
	// By is the line that decided, or "policy DROP" (the first way found
	// that does not accept, when Accept is false).
	By string
}

// Evaluate runs p through the filter table of rs, the way the kernel would
// for the matches piwall writes and the usual foreign ones (addresses,
// interfaces, protocols, ports, icmp types, conntrack states, comments,
// limits, jumps to user chains, RETURN, LOG).
func Evaluate(rs *Ruleset, p Packet) Verdict {
	t := LiveFilter(rs).Table("filter")
	c := t.Chain(p.Chain)
	if c == nil {
		return Verdict{Accept: false, By: "no chain " + p.Chain}
	}
	e := evaluator{table: t, packet: p}
	outs := e.run(c, 0, 0)
	v := Verdict{Accept: true}
	for _, o := range outs {
		if o.kind == outReturn {
			o = outcome{kind: policyOutcome(c.Policy), by: "policy " + c.Policy}
		}
		if o.kind != outAccept {
			return Verdict{Accept: false, By: o.by}
		}
		if v.By == "" {
			v.By = o.by
		}
	}
	return v
}

type outcomeKind int

const (
	outAccept outcomeKind = iota
	outDrop
	outReturn
)

type outcome struct {
	kind outcomeKind
	by   string
}

func policyOutcome(policy string) outcomeKind {
	if policy == "ACCEPT" {
		return outAccept
	}
	return outDrop
}

type evaluator struct {
	table  *Table
	packet Packet
}

type match int

const (
	matchNo match = iota
	matchYes
	matchMaybe
)

// run follows chain c from rule i and returns every way it can end.
func (e evaluator) run(c *Chain, i, depth int) []outcome {
	if depth > 32 {
		return []outcome{{outDrop, "chains nested too deep"}}
	}
	for ; i < len(c.Rules); i++ {
		r := c.Rules[i]
		m := e.matches(r)
		if m == matchNo {
			continue
		}
		outs := e.apply(c, i, r, depth)
		if m == matchMaybe {
			outs = append(outs, e.run(c, i+1, depth)...)
		}
		return outs
	}
	return []outcome{{outReturn, ""}}
}

// apply takes rule i's target and follows on to where the packet ends.
func (e evaluator) apply(c *Chain, i int, r *Rule, depth int) []outcome {
	line := r.Line(c.Name)
	target := r.Target()
	switch target {
	case "ACCEPT":
		return []outcome{{outAccept, line}}
	case "DROP", "REJECT":
		return []outcome{{outDrop, line}}
	case "RETURN":
		return []outcome{{outReturn, line}}
	case "", "LOG", "NFLOG", "MARK", "CONNMARK", "CT", "NOTRACK", "TRACE", "AUDIT":
		return e.run(c, i+1, depth) // these do not end the packet's way
	}
	sub := e.table.Chain(target)
	if sub == nil {
		return []outcome{{outDrop, line}} // a target unknown here may end the packet
	}
	var outs []outcome
	for _, o := range e.run(sub, 0, depth+1) {
		if o.kind != outReturn {
			outs = append(outs, o)
			continue
		}
		if _, gotoChain := r.Option("-g"); gotoChain {
			outs = append(outs, o) // a goto returns to the caller's caller
			continue
		}
		outs = append(outs, e.run(c, i+1, depth)...)
	}
	return outs
}

// matches says whether the packet matches every match of r.
func (e evaluator) matches(r *Rule) match {
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
func CheckSSH(rs4, rs6 *Ruleset, operator, host netip.Addr, port uint16) error {
	operator, host = operator.Unmap(), host.Unmap()
	rs := rs4
	if !operator.Is4() {
		rs = rs6
	}
	in := Packet{Chain: "INPUT", Src: operator, Dst: host, Proto: "tcp", DPort: port, State: "NEW"}
	if v := Evaluate(rs, in); !v.Accept {
		return fmt.Errorf("a new SSH connection from %s to tcp/%d would be dropped (by %s)", operator, port, v.By)
	}
	out := Packet{Chain: "OUTPUT", Src: host, Dst: operator, Proto: "tcp", State: "ESTABLISHED"}
	if v := Evaluate(rs, out); !v.Accept {
		return fmt.Errorf("the replies of SSH on tcp/%d to %s would be dropped (by %s)", port, operator, v.By)
	}
	return nil
}
