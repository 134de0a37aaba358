package modules

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The drop log is what log_drops' LOG rules wrote to the host's kernel log
// ("piwall drop in: ", "piwall drop out: "), read with dmesg, which
// journald reads too. DropsScript prints it after the host's uptime,
// ParseDrops reads it, and SummarizeDrops groups it by direction, protocol,
// peer and port.

// The prefixes of log_drops' and audit mode's LOG rules, as
// modules/firewall writes them.
var dropPrefixes = map[string]struct {
	dir   string
	audit bool
}{
	"piwall drop in: ": {"in", false}, "piwall drop out: ": {"out", false},
	"piwall would drop in: ": {"in", true}, "piwall would drop out: ": {"out", true},
}

// dropsHeader is what the drops script knows.
type dropsHeader struct {
	PATH    string `sh:"PATH"`
	Uptime  string `sh:"uptime"`
	Reverse bool   `sh:"reverse"`
}

// DropsScript prints "uptime SECONDS", then the kernel log's lines of
// piwall's LOG rules, as dmesg prints them ("[SECONDS] piwall drop out:
// ..."). With reverse, it then looks up the name of every address in
// those lines with the host's own resolver: "name ADDR NAME...". Run it
// with DropsCommand.
func DropsScript(paths Paths, reverse bool) string {
	p := paths.resolved()
	return assignments(dropsHeader{PATH: p.PATH, Uptime: p.Uptime, Reverse: reverse}) + `export LC_ALL=C PATH
read -r up _ <"$uptime" && echo "uptime $up"
lines=$(dmesg 2>&1 | grep -E 'piwall (would )?drop ' || true)
[ -z "$lines" ] || printf '%s\n' "$lines"
if $reverse && [ -n "$lines" ]; then
  for a in $(printf '%s\n' "$lines" | grep -oE '(SRC|DST)=[0-9a-fA-F.:]+' | cut -d= -f2 | sort -u); do
    n=$(timeout 3 getent hosts "$a") && printf 'name %s\n' "$n"
  done
fi
echo end
`
}

// DropsCommand runs the drops script, given on stdin, as root: the kernel
// log may be readable by root only (kernel.dmesg_restrict).
func DropsCommand(sudo bool) string { return privileged(sudo, "sh -s") }

// Drop is one packet a LOG rule of log_drops logged.
type Drop struct {
	At        time.Duration // since the host booted
	Direction string        // "in" or "out"
	Proto     string        // tcp, udp, icmp, icmpv6, or the number the kernel printed
	Src, Dst  netip.Addr
	SPort     uint16 // 0 for icmp
	DPort     uint16 // for icmp, the type
	// Audit: audit mode logged it as what the rules would drop, and
	// accepted it.
	Audit bool
}

// Peer is the other end: the destination of what went out, the source of
// what came in.
func (d Drop) Peer() netip.Addr {
	if d.Direction == "out" {
		return d.Dst
	}
	return d.Src
}

// DropLog is what the drops script printed, read.
type DropLog struct {
	Uptime time.Duration // the host's, when it read the log
	Drops  []Drop
	// Names are the names the host's resolver gave the addresses of the
	// log (DropsScript with reverse).
	Names map[netip.Addr]string
}

// ParseDrops reads the drops script's output. Lines of the kernel log it
// cannot read are passed over; an output without the uptime or without
// "end" is an error. self, when not empty, keeps only the packets of these
// addresses (the lab's Pis share one kernel log; a real Pi's log is its
// own).
func ParseDrops(out []byte, self []netip.Addr) (*DropLog, error) {
	l := &DropLog{Names: map[netip.Addr]string{}}
	sawUptime, ended := false, false
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, "uptime "); ok && !sawUptime {
			secs, err := strconv.ParseFloat(rest, 64)
			if err != nil || secs < 0 || secs > 1e10 {
				return nil, fmt.Errorf("drops: uptime %q", rest)
			}
			l.Uptime, sawUptime = time.Duration(secs*float64(time.Second)), true
			continue
		}
		if line == "end" {
			ended = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, "name "); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				a, err := netip.ParseAddr(f[0])
				name := strings.TrimSuffix(f[1], ".")
				if err == nil && hostnameRE.MatchString(name) {
					l.Names[a.Unmap()] = name
				}
			}
			continue
		}
		d, ok := parseDropLine(line)
		if !ok {
			continue
		}
		if len(self) > 0 && !slices.Contains(self, d.Src) && !slices.Contains(self, d.Dst) {
			continue
		}
		l.Drops = append(l.Drops, d)
	}
	if !sawUptime || !ended {
		return nil, fmt.Errorf("drops: the output ends early (the script did not finish)")
	}
	return l, nil
}

// parseDropLine reads "[  5025.123456] piwall drop out: IN= OUT=eth0
// SRC=... DST=... ... PROTO=TCP SPT=40000 DPT=443 ...".
func parseDropLine(line string) (Drop, bool) {
	var d Drop
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "[")
	if !ok {
		return d, false
	}
	stamp, msg, ok := strings.Cut(rest, "]")
	if !ok {
		return d, false
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(stamp), 64)
	if err != nil || secs < 0 || secs > 1e10 {
		return d, false
	}
	d.At = time.Duration(secs * float64(time.Second))
	msg = strings.TrimSpace(msg)
	for prefix, k := range dropPrefixes {
		if after, ok := strings.CutPrefix(msg, prefix); ok {
			d.Direction, d.Audit, msg = k.dir, k.audit, after
		}
	}
	if d.Direction == "" {
		return d, false
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(msg) {
		if k, v, ok := strings.Cut(f, "="); ok {
			if _, seen := fields[k]; !seen {
				fields[k] = v
			}
		}
	}
	if d.Src, err = netip.ParseAddr(fields["SRC"]); err != nil {
		return d, false
	}
	if d.Dst, err = netip.ParseAddr(fields["DST"]); err != nil {
		return d, false
	}
	d.Proto = strings.ToLower(fields["PROTO"])
	port := func(k string) uint16 {
		n, err := strconv.ParseUint(fields[k], 10, 16)
		if err != nil {
			return 0
		}
		return uint16(n)
	}
	switch d.Proto {
	case "tcp", "udp", "udplite", "sctp":
		d.SPort, d.DPort = port("SPT"), port("DPT")
	case "icmp", "icmpv6":
		d.DPort = port("TYPE")
	case "":
		return d, false
	}
	return d, true
}

// DropGroup is the drops of one direction, protocol, peer and port.
type DropGroup struct {
	Direction   string
	Proto       string
	Peer        netip.Addr
	Name        string // the peer's name, from the plan's names as the host resolves them; "" for none
	Port        uint16 // the host's port for what came in, the peer's for what went out; the type for icmp
	Count       int
	First, Last time.Time
	Audit       bool // audit mode's: what the rules would drop, accepted
}

// What is the group's port in the plan's words: tcp/443, udp/123, icmp.
func (g DropGroup) What() string {
	switch g.Proto {
	case "icmp", "icmpv6":
		return "icmp"
	case "tcp", "udp":
		return g.Proto + "/" + strconv.Itoa(int(g.Port))
	}
	return g.Proto
}

// SummarizeDrops groups the log's drops seen since `since` before now
// (0: all of them), most first; names maps addresses to the plan's names.
// Times are the host's boot time plus each drop's stamp: the kernel's
// clock does not stop for NTP, but stops while the host sleeps (a Pi does
// not).
func SummarizeDrops(l *DropLog, names map[netip.Addr]string, since time.Duration, now time.Time) []DropGroup {
	boot := now.Add(-l.Uptime)
	type key struct {
		dir, proto string
		peer       netip.Addr
		port       uint16
		audit      bool
	}
	groups := map[key]*DropGroup{}
	var order []key
	for _, d := range l.Drops {
		if since > 0 && l.Uptime-d.At > since {
			continue
		}
		k := key{d.Direction, d.Proto, d.Peer(), d.DPort, d.Audit}
		at := boot.Add(d.At)
		g := groups[k]
		if g == nil {
			g = &DropGroup{Direction: k.dir, Proto: k.proto, Peer: k.peer, Port: k.port, Name: names[k.peer], First: at, Audit: k.audit}
			if g.Name == "" {
				g.Name = l.Names[k.peer]
			}
			groups[k] = g
			order = append(order, k)
		}
		g.Count++
		g.Last = at
	}
	out := make([]DropGroup, 0, len(order))
	for _, k := range order {
		out = append(out, *groups[k])
	}
	slices.SortStableFunc(out, func(a, b DropGroup) int { return b.Count - a.Count })
	return out
}

// NamesByAddr maps every address of the facts' names to its name, the
// first name in order where two share an address.
func NamesByAddr(f *Facts) map[netip.Addr]string {
	var names []string
	for n := range f.Names {
		names = append(names, n)
	}
	slices.Sort(names)
	m := map[netip.Addr]string{}
	for _, n := range names {
		for _, a := range f.Names[n].Addrs {
			if _, ok := m[a]; !ok {
				m[a] = n
			}
		}
	}
	return m
}

// SelfAddrs are the host's own addresses, from its facts.
func SelfAddrs(f *Facts) []netip.Addr {
	var out []netip.Addr
	for _, a := range f.Addrs {
		out = append(out, a.Prefix.Addr())
	}
	if f.Self.IsValid() {
		out = append(out, f.Self)
	}
	return out
}

// hostnameRE is a name that may go into a plan as it is: a reverse lookup
// answers with whatever its zone holds.
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$`)

// Suggest turns drops into allowlist entries the operator can paste into
// an allowlist: per direction and peer (its name where there is one, else
// its address), the ports it was seen on, outbound first. ICMP is
// suggested for echo requests only; other protocols are left out.
func Suggest(groups []DropGroup) string {
	type entry struct {
		dir, peer string
		ports     []string
	}
	var entries []*entry
	byKey := map[string]*entry{}
	for _, g := range groups {
		port := g.What()
		switch {
		case g.Proto == "icmp" && g.Port == 8, g.Proto == "icmpv6" && g.Port == 128:
		case g.Proto == "tcp", g.Proto == "udp":
		default:
			continue
		}
		peer := g.Peer.String()
		if g.Name != "" && hostnameRE.MatchString(g.Name) {
			peer = g.Name
		}
		k := g.Direction + " " + peer
		e := byKey[k]
		if e == nil {
			e = &entry{dir: g.Direction, peer: peer}
			byKey[k] = e
			entries = append(entries, e)
		}
		if !slices.Contains(e.ports, port) {
			e.ports = append(e.ports, port)
		}
	}
	slices.SortStableFunc(entries, func(a, b *entry) int {
		if a.dir != b.dir {
			return strings.Compare(b.dir, a.dir) // out before in
		}
		return strings.Compare(a.peer, b.peer)
	})
	var b strings.Builder
	for _, e := range entries {
		slices.Sort(e.ports)
		quoted := make([]string, len(e.ports))
		for i, p := range e.ports {
			quoted[i] = strconv.Quote(p)
		}
		block, attr := "outbound", "to   "
		if e.dir == "in" {
			block, attr = "inbound", "from "
		}
		fmt.Fprintf(&b, "%s {\n  %s = [%s]\n  ports = [%s]\n}\n", block, attr, strconv.Quote(e.peer), strings.Join(quoted, ", "))
	}
	return b.String()
}
