package plans

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Plan is a decoded plan: what an operator wrote in one .hcl file or a
// directory of them, with every value evaluated and checked, and the source
// range of each kept so that later stages can point back into the files.
type Plan struct {
	Defaults Connection
	// Coexist, in defaults, names the other owners of every host's
	// firewall (see Owners).
	Coexist    []Value[string]
	Allowlists []*Allowlist // in the order written
	Groups     []*Group
	Hosts      []*Host
	Rollout    Rollout

	// Files are the parsed sources, for printing diagnostics with snippets.
	Files map[string]*hcl.File
}

// Host looks up a host by label.
func (p *Plan) Host(name string) *Host {
	for _, h := range p.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Allowlist looks up an allowlist by name.
func (p *Plan) Allowlist(name string) *Allowlist {
	for _, a := range p.Allowlists {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Group looks up a group by name.
func (p *Plan) Group(name string) *Group {
	for _, g := range p.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Connection holds how to reach a host and how careful to be with it. In
// `defaults` and in each `host`; a nil field was not written there.
type Connection struct {
	User         *Value[string]
	Port         *Value[int]
	IdentityFile *Value[string]
	Sudo         *Value[bool]
	Jump         *Value[string]
	KnownHosts   *Value[string]
	RevertAfter  *Value[time.Duration]
	// DNSRefresh is how often the host re-resolves the plan's names and
	// updates their address sets; 0: the addresses are compiled into the
	// rules at plan time.
	DNSRefresh *Value[time.Duration]
}

// Value is a setting together with where it was written.
type Value[T any] struct {
	V     T
	Range hcl.Range
}

// Allowlist is one `allowlist` block.
type Allowlist struct {
	Name     string
	Inbound  []*Entry
	Outbound []*Entry
	// ExpectBlocked are the expect_blocked blocks: what check requires to
	// stay unreachable from the host. They compile to no rule.
	ExpectBlocked []*Entry
	DNS           *Value[DNS]
	Ping          *Value[bool]
	LogDrops      *Value[bool]
	// Audit is mode = "audit": what the rules would drop is logged and
	// accepted; nil where mode is not written (enforce).
	Audit      *Value[bool]
	KeepChains []Value[string]
	Coexist    []Value[string] // owners, as Owners names them
	// DHCP, DHCPv6, MLD and MDNS switch keeping the host's own network
	// services working on or off; nil: the host's facts decide.
	DHCP, DHCPv6, MLD, MDNS *Value[bool]
	DeclRange               hcl.Range
}

// serviceSwitch is one of an allowlist's switches of the host's services.
type serviceSwitch struct {
	name string
	v    **Value[bool]
}

// switches are a's service switches by their names in a plan, in Keep's
// order.
func (a *Allowlist) switches() []serviceSwitch {
	return []serviceSwitch{{name: "dhcp", v: &a.DHCP}, {name: "dhcpv6", v: &a.DHCPv6}, {name: "mld", v: &a.MLD}, {name: "mdns", v: &a.MDNS}}
}

// Owners are the other programs whose rules a plan can declare by name,
// with coexist = [...]: each stands for everything that program puts in
// the filter table, on every layout it has had (modules/firewall knows
// what that is).
var Owners = []string{"docker", "fail2ban", "tailscale"}

// Direction is which way an entry opens connections.
type Direction string

const (
	Inbound  Direction = "inbound"  // peers may open connections to the host
	Outbound Direction = "outbound" // the host may open connections to peers
	// ExpectBlocked entries open nothing: they name peers and ports the
	// host must not reach, which piwall check probes from the host.
	ExpectBlocked Direction = "expect_blocked"
)

// Entry is one `inbound`, `outbound` or `expect_blocked` block: these
// peers, on these ports.
type Entry struct {
	Allowlist string
	Direction Direction
	Index     int // 1-based, among the allowlist's entries of the same direction
	Peers     []Endpoint
	Ports     []Port // empty: every protocol
	DeclRange hcl.Range
}

// Endpoint is a peer: an address, a network, or a DNS name.
type Endpoint struct {
	Name   string       // a DNS name, resolved later; "" for an address or network
	Prefix netip.Prefix // an address (/32, /128) or a network; invalid for a name
	Range  hcl.Range
}

// String is the endpoint as the operator wrote it (addresses without /32).
func (e Endpoint) String() string {
	if e.Name != "" {
		return e.Name
	}
	if e.Prefix.IsSingleIP() {
		return e.Prefix.Addr().String()
	}
	return e.Prefix.String()
}

// Port is a protocol with an optional port range: tcp/443, udp/53,
// tcp/8000-8100, icmp.
type Port struct {
	Proto    string // "tcp", "udp" or "icmp"
	From, To uint16 // 0 for icmp; From == To for a single port
	Range    hcl.Range
}

// String is the port in the plan's notation.
func (p Port) String() string {
	switch {
	case p.Proto == "icmp":
		return "icmp"
	case p.From == p.To:
		return p.Proto + "/" + strconv.Itoa(int(p.From))
	default:
		return p.Proto + "/" + strconv.Itoa(int(p.From)) + "-" + strconv.Itoa(int(p.To))
	}
}

// Contains reports whether every packet q admits, p admits too.
func (p Port) Contains(q Port) bool {
	return p.Proto == q.Proto && p.From <= q.From && q.To <= p.To
}

// DNS is an allowlist's dns setting: which resolvers the host may query.
type DNS struct {
	Mode      string       // "system", "none", or "list"
	Resolvers []netip.Addr // with Mode "list"
}

// Group is one `group` block.
type Group struct {
	Name       string
	Allowlists []Value[string]
	DeclRange  hcl.Range

	badRefs bool // allowlists had an error, reported already
}

// Host is one `host` block, with its allowlists merged into a Policy.
type Host struct {
	Name       string
	Address    Value[string] // defaults to the label
	Groups     []Value[string]
	Allowlists []Value[string]
	Connection Connection
	Policy     *Policy
	DeclRange  hcl.Range

	badRefs bool // groups or allowlists had an error, reported already
	// ansible: the host comes from an Ansible inventory, in these groups.
	ansible       bool
	ansibleGroups []string
}

// Policy is what a host's allowlists, direct and through its groups, say
// together. Scalar settings that no allowlist sets take their defaults.
type Policy struct {
	Allowlists []string // names, in order, each once
	Inbound    []*Entry
	Outbound   []*Entry
	// ExpectBlocked is what check requires the host not to reach; no rule
	// comes of it.
	ExpectBlocked []*Entry
	DNS           DNS
	Ping          bool
	LogDrops      bool
	// Audit: the rules log what they would drop ("piwall would drop")
	// and accept it, to learn what a Pi needs before enforcing.
	Audit      bool
	KeepChains []string
	Coexist    []string // the defaults' owners, then each allowlist's, each once
	Keep       Keep
	// DNSRefresh is the host's dns_refresh (its own, else the defaults',
	// else DefaultDNSRefresh): names become address sets refreshed on the
	// host this often; 0 compiles their addresses into the rules.
	DNSRefresh time.Duration
}

// Keep says which of the host's own network services the rulesets keep
// working, as the plan's switches say.
type Keep struct {
	DHCP   Switch // DHCPv4: udp/68 to the server's udp/67, and its answers
	DHCPv6 Switch // udp/546 to udp/547, and the answers
	MLD    Switch // multicast listener reports and queries (ICMPv6 130-132, 143)
	MDNS   Switch // mDNS, udp/5353 to 224.0.0.251 and ff02::fb, for NAME.local
}

// Switch is one service's switch: Auto, where the plan says nothing, lets
// the host's facts decide.
type Switch int

const (
	Auto Switch = iota
	On
	Off
)

// Rollout is the `rollout` block.
type Rollout struct {
	Parallel    int
	Canary      int
	Batch       int
	MaxFailures int
}

// Default settings, where a plan says nothing.
var (
	DefaultRollout     = Rollout{Parallel: 10, Canary: 1, Batch: 5, MaxFailures: 0}
	DefaultRevertAfter = 60 * time.Second
	// MinRevertAfter is the shortest revert_after: time for a confirmation
	// over a new connection on a slow link.
	MinRevertAfter = 10 * time.Second
	// DefaultDNSRefresh: a CDN's or pool's answers live for minutes; a
	// refresh every five keeps a host within one TTL or two of them
	// without a lookup storm on a fleet.
	DefaultDNSRefresh = 5 * time.Minute
	// MinDNSRefresh keeps a refresher from hammering the host's resolver.
	MinDNSRefresh = 10 * time.Second
)
