package modules

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// A check proves a host's rules from the host's side, changing nothing:
// what the plan allows is reachable (a TCP connection, a real NTP query, a
// real DNS query to each allowed resolver, ping where it is allowed), what
// it says must stay blocked is blocked, loopback works both ways, names
// resolve on the host, and the live rules are the persisted ones. NewCheck
// makes the probes from the plan and the facts; Script is what runs them
// on the host, all at once, each bounded by ProbeTimeout; Judge reads what
// the script printed and says, probe by probe, whether the expectation
// held.

// ProbeTimeout bounds one try of a probe on the host: a peer that does
// not answer within it, twice, counts as not reachable; one that must
// stay blocked is tried once. The probes run in parallel, so a whole
// check takes about this long when everything holds.
const ProbeTimeout = 3 * time.Second

// Expectation is what a probe must see.
type Expectation string

const (
	ExpectReachable Expectation = "reachable" // a connection, an answer or a reply
	ExpectBlocked   Expectation = "blocked"   // a timeout, a refusal, or the host's own rules denying it
	// ExpectLoopback: a connection or a refusal. Either proves that a
	// packet went out on lo and the answer came back in: both directions
	// are open.
	ExpectLoopback Expectation = "open or refused"
)

// ProbeKind is how a probe is sent.
type ProbeKind string

const (
	ProbeTCP  ProbeKind = "tcp"  // a TCP connection
	ProbeNTP  ProbeKind = "ntp"  // an NTP client request, answered by a server
	ProbeDNS  ProbeKind = "dns"  // a DNS query over UDP, answered
	ProbePing ProbeKind = "ping" // one ICMP echo
)

// Probe is one thing a check sends from the host.
type Probe struct {
	ID     int
	Kind   ProbeKind
	Peer   string // the peer as the plan names it: a name, or an address
	Addr   netip.Addr
	Port   uint16 // 0 for ping
	Expect Expectation
	From   string // what asked for it: "kiosk outbound 1", "dns", "loopback"
	query  []byte // the datagram of an NTP or DNS probe
}

// NewProbe is a probe of kind to addr (peer, as the plan names it) on
// port, with the datagram an NTP or DNS probe sends (a query for peer's
// name, or the root's); ID is set by the check that holds it.
func NewProbe(kind ProbeKind, peer string, addr netip.Addr, port uint16, expect Expectation) Probe {
	p := Probe{Kind: kind, Peer: peer, Addr: addr, Port: port, Expect: expect}
	switch kind {
	case ProbeNTP:
		p.query = ntpQuery()
	case ProbeDNS:
		qname := "."
		if _, err := netip.ParseAddr(peer); err != nil && peer != "" {
			qname = peer
		}
		p.query = dnsQuery(0x7000, qname)
	}
	return p
}

// What is the probe in the words of the table: "tcp/443 api.lab
// (198.18.1.11)".
func (p Probe) What() string {
	var s string
	switch p.Kind {
	case ProbeTCP:
		s = "tcp/" + strconv.Itoa(int(p.Port))
	case ProbeNTP:
		s = "ntp udp/" + strconv.Itoa(int(p.Port))
	case ProbeDNS:
		s = "dns udp/" + strconv.Itoa(int(p.Port))
	case ProbePing:
		s = "ping"
	}
	if p.Peer != "" && p.Peer != p.Addr.String() {
		return s + " " + p.Peer + " (" + p.Addr.String() + ")"
	}
	return s + " " + p.Addr.String()
}

// Finding is one line of a check's table: a probe, or a fact the check
// judged (a name that must resolve, the rules that must be persisted).
type Finding struct {
	What     string
	From     string // the allowlist entry or the rule it checks
	Expected string
	Seen     string
	Took     time.Duration // 0 for a fact
	OK       bool
	// Skipped says why nothing was probed (a network, a port no probe
	// speaks, a host without ping); such a line is neither OK nor a
	// failure.
	Skipped bool
}

// Check is a host's check: the probes to run and the findings that came
// from the facts alone.
type Check struct {
	Probes []Probe
	Facts  []Finding // names, persisted rules, probes skipped
	// Limit bounds each probe; zero: ProbeTimeout. Whole seconds: ping's
	// -W takes no less.
	Limit time.Duration
}

func (c *Check) limit() time.Duration {
	if c.Limit <= 0 {
		return ProbeTimeout
	}
	return c.Limit
}

// CheckRequest is the facts a check needs of h: the names of its plan,
// expect_blocked's too, and the persisted rules.
func CheckRequest(h *plans.Host) FactsRequest {
	names := firewall.Names(h.Policy)
	for _, e := range h.Policy.ExpectBlocked {
		for _, p := range e.Peers {
			if p.Name != "" && !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	return FactsRequest{Names: names, PersistedRules: true}
}

// NewCheck makes h's check from its plan and its facts (gathered with
// CheckRequest).
func NewCheck(h *plans.Host, f *Facts) (*Check, error) {
	c := &Check{}
	pol := h.Policy
	seen := map[string]bool{}
	add := func(p Probe) {
		key := fmt.Sprint(p.Kind, p.Addr, p.Port, p.Expect)
		if seen[key] {
			return
		}
		seen[key] = true
		p.ID = len(c.Probes) + 1
		c.Probes = append(c.Probes, p)
	}
	skip := func(what, from, why string) {
		if seen[what+from] {
			return
		}
		seen[what+from] = true
		c.Facts = append(c.Facts, Finding{What: what, From: from, Expected: "-", Seen: why, Skipped: true})
	}

	// Names first: a probe goes to the addresses the host resolves.
	var names []string
	for name := range f.Names {
		names = append(names, name)
	}
	for name := range f.NameErrors {
		names = append(names, name)
	}
	slices.Sort(names)
	ruled := firewall.Names(pol) // the names the rules match; the others are expect_blocked's
	for _, name := range names {
		fd := Finding{What: "resolve " + name, From: "names", Expected: "resolves"}
		if e, bad := f.NameErrors[name]; bad {
			fd.Seen = e
			if !slices.Contains(ruled, name) {
				// A peer that must stay blocked and has no address cannot
				// be reached: nothing to probe, nothing failed.
				fd.Expected, fd.Skipped = "-", true
				fd.Seen = "not probed: " + e
			}
		} else {
			fd.OK, fd.Seen = true, addrList(f.Names[name].Addrs)
		}
		c.Facts = append(c.Facts, fd)
	}
	addrs := func(p plans.Endpoint) []netip.Addr {
		if p.Name != "" {
			return f.Names[p.Name].Addrs
		}
		if p.Prefix.IsSingleIP() {
			return []netip.Addr{p.Prefix.Addr()}
		}
		return nil
	}

	// Loopback, both ways: a connection to the SSH port on 127.0.0.1 and
	// ::1 goes out on lo and its answer (a SYN-ACK or a RST) comes in.
	port := uint16(f.SSHPort)
	if port == 0 {
		port = 22
	}
	for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
		add(Probe{Kind: ProbeTCP, Addr: a, Port: port, Expect: ExpectLoopback, From: "loopback"})
	}

	// DNS: a real query to each resolver the rules allow.
	var resolvers []netip.Addr
	switch pol.DNS.Mode {
	case "system":
		resolvers = f.Resolvers
	case "list":
		resolvers = pol.DNS.Resolvers
	}
	qname := "."
	if len(names) > 0 {
		qname = names[0]
	}
	for i, r := range resolvers {
		add(Probe{Kind: ProbeDNS, Addr: r, Port: 53, Expect: ExpectReachable, From: "dns", query: dnsQuery(uint16(0x7000+i), qname)})
	}

	probes := func(e *plans.Entry, expect Expectation) {
		from := fmt.Sprintf("%s %s %d", e.Allowlist, e.Direction, e.Index)
		ports := e.Ports
		if len(ports) == 0 {
			// Every protocol: ping, and the two ports a kiosk's peer most
			// likely serves.
			ports = []plans.Port{{Proto: "icmp"}, {Proto: "tcp", From: 443, To: 443}, {Proto: "tcp", From: 80, To: 80}}
			if expect == ExpectReachable {
				ports = ports[:1]
			}
		}
		for _, peer := range e.Peers {
			as := addrs(peer)
			if len(as) == 0 {
				if peer.Name == "" {
					skip(peer.String(), from, "not probed: a network, not an address")
				}
				continue // a name that does not resolve is its own finding
			}
			for _, a := range as {
				for _, pt := range ports {
					p := Probe{Peer: peer.String(), Addr: a, Port: pt.From, Expect: expect, From: from}
					switch {
					case pt.Proto == "tcp":
						p.Kind = ProbeTCP
					case pt.Proto == "icmp":
						p.Kind = ProbePing
					case pt.Proto == "udp" && pt.From <= 123 && 123 <= pt.To:
						p.Kind, p.Port, p.query = ProbeNTP, 123, ntpQuery()
					case pt.Proto == "udp" && pt.From <= 53 && 53 <= pt.To:
						p.Kind, p.Port, p.query = ProbeDNS, 53, dnsQuery(uint16(0x7100+len(c.Probes)), qname)
					default:
						skip(pt.String()+" "+peer.String(), from, "not probed: no probe speaks "+pt.String())
						continue
					}
					add(p)
				}
			}
		}
	}
	for _, e := range pol.Outbound {
		probes(e, ExpectReachable)
	}
	if pol.Ping {
		for _, e := range pol.Outbound {
			from := fmt.Sprintf("%s %s %d, ping", e.Allowlist, e.Direction, e.Index)
			for _, peer := range e.Peers {
				for _, a := range addrs(peer) {
					add(Probe{Kind: ProbePing, Peer: peer.String(), Addr: a, Expect: ExpectReachable, From: from})
				}
			}
		}
	}
	for _, e := range pol.ExpectBlocked {
		probes(e, ExpectBlocked)
	}

	// The live rules are the persisted ones: piwall's part of each.
	foreign := f.Foreign
	if foreign == nil {
		var err error
		if foreign, err = firewall.NewForeign(pol.KeepChains, pol.Coexist, f.Live[firewall.IPv4], f.Live[firewall.IPv6]); err != nil {
			return nil, err
		}
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		c.Facts = append(c.Facts, persistedFinding(fam, foreign, f))
	}
	return c, nil
}

// persistedFinding compares piwall's part of a family's live rules with
// the persisted file's.
func persistedFinding(fam firewall.Family, foreign *firewall.Foreign, f *Facts) Finding {
	file := "rules.v" + strconv.Itoa(int(fam))
	fd := Finding{What: "persisted IPv" + strconv.Itoa(int(fam)), From: file, Expected: "live = " + file}
	persisted, ok := f.PersistedText[fam]
	if !ok {
		fd.Seen = file + " is missing: a reboot loads no rules"
		return fd
	}
	live, _ := f.Own(fam, foreign)
	saved := foreign.OwnText(persisted)
	if live == saved {
		fd.OK, fd.Seen = true, "same"
		return fd
	}
	onlyLive, onlySaved := lineDiff(live, saved)
	fd.Seen = fmt.Sprintf("differs: %d line(s) live only, %d in %s only", onlyLive, onlySaved, file)
	return fd
}

// lineDiff counts the lines of a not in b, and of b not in a.
func lineDiff(a, b string) (onlyA, onlyB int) {
	count := map[string]int{}
	for l := range strings.Lines(a) {
		count[l]++
	}
	for l := range strings.Lines(b) {
		count[l]--
	}
	for _, n := range count {
		if n > 0 {
			onlyA += n
		} else {
			onlyB -= n
		}
	}
	return onlyA, onlyB
}

// checkHeader is what the check script knows.
type checkHeader struct {
	PATH  string `sh:"PATH"`
	Limit int    `sh:"limit"` // seconds, for timeout and ping -W
}

// Script is the check script for the host: a header, check.sh, one line
// per probe and "finish". Run it with CheckCommand.
func (c *Check) Script(paths Paths) string {
	var b strings.Builder
	b.WriteString(assignments(checkHeader{PATH: paths.resolved().PATH, Limit: int((c.limit() + time.Second - 1) / time.Second)}))
	b.WriteString(scriptFile("check.sh"))
	for _, p := range c.Probes {
		// What must get through is tried twice before it counts as
		// blocked; what must not, once: a second try would only find the
		// same silence.
		tries := "2"
		if p.Expect == ExpectBlocked {
			tries = "1"
		}
		args := []string{"probe", strconv.Itoa(p.ID), tries}
		switch p.Kind {
		case ProbeTCP:
			args = append(args, "tcp", Quote(p.Addr.String()), strconv.Itoa(int(p.Port)))
		case ProbeNTP, ProbeDNS:
			args = append(args, "udp", Quote(p.Addr.String()), strconv.Itoa(int(p.Port)), Quote(printfEscapes(p.query)))
		case ProbePing:
			args = append(args, "ping", Quote(p.Addr.String()), "0")
		}
		b.WriteString(strings.Join(args, " ") + "\n")
	}
	b.WriteString("finish\n")
	return b.String()
}

// CheckCommand runs the check script, given on stdin, under bash as root:
// ping needs no capabilities then, and the probes see the rules as every
// program on the host does.
func CheckCommand(sudo bool) string { return privileged(sudo, "bash -s") }

// printfEscapes writes b as printf's \xHH escapes, so that NUL bytes
// reach the datagram.
func printfEscapes(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, `\x%02x`, c)
	}
	return s.String()
}

// ProbeResult is what the check script said of one probe.
type ProbeResult struct {
	ID     int
	Result string // open, answer, reply, refused, denied, unreachable, timeout, missing, error
	Took   time.Duration
	Detail string // the answer in hex, the missing tool, or what failed
}

// probeResults are the words the check script may print.
var probeResults = []string{"open", "answer", "reply", "refused", "denied", "unreachable", "timeout", "missing", "error"}

// ParseProbes reads what the check script printed: one "probe" line per
// probe, then "end". An output without "end" was cut short: an error.
func ParseProbes(out []byte) ([]ProbeResult, error) {
	var rs []ProbeResult
	ended := false
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "end" {
			ended = true
			continue
		}
		rest, ok := strings.CutPrefix(line, "probe ")
		if !ok {
			continue
		}
		fields := strings.SplitN(rest, " ", 4)
		if len(fields) < 3 {
			return nil, fmt.Errorf("check: probe line %q: too few fields", line)
		}
		id, err := strconv.Atoi(fields[0])
		if err != nil || id < 1 {
			return nil, fmt.Errorf("check: probe line %q: bad id", line)
		}
		if !slices.Contains(probeResults, fields[1]) {
			return nil, fmt.Errorf("check: probe line %q: unknown result %q", line, fields[1])
		}
		ms, err := strconv.ParseInt(fields[2], 10, 32)
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("check: probe line %q: bad time", line)
		}
		r := ProbeResult{ID: id, Result: fields[1], Took: time.Duration(ms) * time.Millisecond}
		if len(fields) == 4 {
			r.Detail = strings.TrimSpace(fields[3])
		}
		rs = append(rs, r)
	}
	if !ended {
		return nil, fmt.Errorf("check: the output ends early (the script did not finish)")
	}
	return rs, nil
}

// FormatProbes prints results as the check script does.
func FormatProbes(rs []ProbeResult) []byte {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "probe %d %s %d %s\n", r.ID, r.Result, r.Took.Milliseconds(), r.Detail)
	}
	b.WriteString("end\n")
	return []byte(b.String())
}

// Judge reads the check script's output and returns the check's findings:
// the facts' first, then one per probe, in the probes' order. A probe the
// script did not report fails, as "no result".
func (c *Check) Judge(out []byte) ([]Finding, error) {
	rs, err := ParseProbes(out)
	if err != nil {
		return nil, err
	}
	byID := map[int]ProbeResult{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	findings := append([]Finding{}, c.Facts...)
	for _, p := range c.Probes {
		fd := Finding{What: p.What(), From: p.From, Expected: string(p.Expect)}
		r, ok := byID[p.ID]
		if !ok {
			fd.Seen = "no result"
			findings = append(findings, fd)
			continue
		}
		fd.Took = r.Took
		fd.Seen, fd.OK = judge(p, r, c.limit())
		if r.Result == "missing" {
			fd.Skipped, fd.OK = true, false
			fd.Seen = "not probed: " + r.Detail + " is not installed on the host"
		}
		findings = append(findings, fd)
	}
	return findings, nil
}

// judge says what a probe saw, in words, and whether it is what the probe
// expected.
func judge(p Probe, r ProbeResult, limit time.Duration) (seen string, ok bool) {
	reached := false
	switch r.Result {
	case "open":
		seen, reached = "connected", true
	case "reply":
		seen, reached = "reply", true
	case "answer":
		var err error
		switch p.Kind {
		case ProbeNTP:
			seen, err = ntpAnswer(r.Detail)
		case ProbeDNS:
			seen, err = dnsAnswer(r.Detail, p.query)
		default:
			seen = "answer"
		}
		if err != nil {
			// Something answered, but not the service: the port is open,
			// the service is not what the plan expects.
			return "answer, but " + err.Error(), false
		}
		reached = true
	case "denied":
		seen = "denied by the host's own rules"
	case "refused":
		seen = "refused"
	case "unreachable":
		seen = "unreachable"
	case "timeout":
		seen = "no answer within " + limit.String()
		if p.Expect != ExpectBlocked {
			seen += ", twice"
		}
	case "error":
		seen = "error: " + r.Detail
	}
	switch p.Expect {
	case ExpectReachable:
		return seen, reached
	case ExpectBlocked:
		return seen, !reached && r.Result != "error"
	case ExpectLoopback:
		return seen, reached || r.Result == "refused"
	}
	return seen, false
}

// ntpQuery is an NTP client request (RFC 5905): version 4, mode 3, the
// rest zero, 48 bytes.
func ntpQuery() []byte {
	q := make([]byte, 48)
	q[0] = 4<<3 | 3
	return q
}

// ntpAnswer checks that hexText is an NTP server's answer: 48 bytes at
// least, mode 4 (server), a stratum from 1 to 15 and a transmit time; it
// says the stratum and the server's time.
func ntpAnswer(hexText string) (string, error) {
	b, err := hex.DecodeString(hexText)
	if err != nil {
		return "", fmt.Errorf("not hex")
	}
	if len(b) < 48 {
		return "", fmt.Errorf("%d bytes, not an NTP answer", len(b))
	}
	if mode := b[0] & 7; mode != 4 {
		return "", fmt.Errorf("NTP mode %d, not a server's answer", mode)
	}
	stratum := b[1]
	if stratum == 0 || stratum > 15 {
		return "", fmt.Errorf("NTP stratum %d: the server is not synchronised", stratum)
	}
	secs := binary.BigEndian.Uint32(b[40:44])
	if secs == 0 {
		return "", fmt.Errorf("NTP answer without a transmit time")
	}
	// NTP's era 0 began in 1900; times after 2036 wrap into era 1.
	t := time.Unix(int64(secs)-2208988800, 0)
	if secs < 0x80000000 {
		t = t.Add(1 << 32 * time.Second)
	}
	return fmt.Sprintf("NTP answer, stratum %d, %s", stratum, t.UTC().Format("15:04:05Z")), nil
}

// dnsQuery is a DNS query (RFC 1035) for name's A record with the given
// id, recursion desired.
func dnsQuery(id uint16, name string) []byte {
	q := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 {
			continue
		}
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// dnsRcodes are the DNS response codes by number.
var dnsRcodes = []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

// dnsAnswer checks that hexText answers query: the same id, the response
// bit set. Any response code counts: the resolver answered.
func dnsAnswer(hexText string, query []byte) (string, error) {
	b, err := hex.DecodeString(hexText)
	if err != nil {
		return "", fmt.Errorf("not hex")
	}
	if len(b) < 12 || len(query) < 2 {
		return "", fmt.Errorf("%d bytes, not a DNS answer", len(b))
	}
	if b[0] != query[0] || b[1] != query[1] || b[2]&0x80 == 0 {
		return "", fmt.Errorf("not an answer to the query")
	}
	rcode := "rcode " + strconv.Itoa(int(b[3]&0x0f))
	if n := int(b[3] & 0x0f); n < len(dnsRcodes) {
		rcode = dnsRcodes[n]
	}
	return fmt.Sprintf("DNS answer, %s, %d record(s)", rcode, binary.BigEndian.Uint16(b[6:8])), nil
}
