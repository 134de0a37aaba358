package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// Facts are what piwall knows of a host, all gathered in one round trip by
// FactsScript and read by ParseFacts. Nothing else is asked of the host
// before deciding what to change.
type Facts struct {
	Operator netip.Addr // the operator's address as the host sees it (SSH_CONNECTION)
	Self     netip.Addr // the host's address the operator reached
	SSHPort  int        // the port sshd answered on
	Iface    string     // the host's interface toward the operator ("" if unknown)
	// Backend is what iptables uses: "nf_tables" or "legacy" ("" if not
	// installed). Other holds the filter tables of the other backend, by
	// the tool that printed them (iptables-legacy-save, ...).
	Backend string
	Other   map[string]*firewall.Ruleset
	Tools   map[string]bool
	// Live holds the rulesets of each family, parsed; LiveText what
	// iptables-save printed, as NormalizeSave makes it.
	Live       map[firewall.Family]*firewall.Ruleset
	LiveText   map[firewall.Family]string
	Resolvers  []netip.Addr
	Generation int    // the current generation, 0 for none
	Lock       *Lock  // who holds the lock; nil when it is free
	Boot       string // the kernel's id of the host's current boot
	// Restore is what the host's boot does with the persisted rules, and
	// RulesFS where they are kept; zero from a host that did not say.
	Restore Restore
	RulesFS RulesFS
	// Addrs are the host's addresses, and Daemons the network daemons
	// that run (dhclient, dhcpcd, NetworkManager, systemd-network,
	// avahi-daemon): what tells which of its own services it uses.
	Addrs     []HostAddr
	Daemons   map[string]bool
	Persisted map[firewall.Family]string
	// PersistedText holds the persisted rules files, as NormalizeSave
	// makes them, of the families whose file exists; asked for with
	// FactsRequest.PersistedRules.
	PersistedText map[firewall.Family]string
	// Runs are the runs that armed a dead-man, and Counters each family's
	// filter table as iptables-save -c prints it; asked for with
	// FactsRequest.Status.
	Runs       []RunState
	Counters   map[firewall.Family]string
	Names      map[string]firewall.Resolution
	NameErrors map[string]string
	// Refreshed is what the host's names' refresher keeps of each name it
	// refreshes, by name; empty on a host that refreshes none.
	Refreshed map[string]*NameState
	// RollbackTo is the generation FactsRequest.Rollback asked for, as the
	// host numbered it; nil when none was asked for.
	RollbackTo *GenerationRules
	History    []Generation // with FactsRequest.History, oldest first
	// Foreign is the declaration of others' rules that the current
	// generation was applied with; empty on a host piwall never changed.
	Foreign *firewall.Foreign
}

// Lock is the lock a run holds on a host while it changes its rules.
type Lock struct {
	Run      string
	Operator string // user@machine
	Since    time.Time
	Expires  time.Time // when another run may take it over, by the host's wall clock
	Boot     string    // the boot it was taken in; a lock of an earlier boot is stale
}

// GenerationRules are the rulesets of one generation on the host.
type GenerationRules struct {
	Number int    // below 1 when there is no generation before the current one
	V4, V6 string // the rulesets, as the host keeps them
	// Sets and Names are the generation's address sets and names'
	// refresher configuration; empty for one that matched no name.
	Sets, Names string
	Found       bool // the host has both rulesets of the generation
}

// NeedsIptables reports whether iptables must be installed first.
func (f *Facts) NeedsIptables() bool {
	return !f.Tools["iptables-restore"] || !f.Tools["ip6tables-restore"] || !f.Tools["netfilter-persistent"] ||
		len(f.Restore.missing()) > 0
}

// Own is piwall's part of a family's live rules, as the scripts' own
// prints it, and its digest: what prepare checks is unchanged since the
// plan.
func (f *Facts) Own(fam firewall.Family, foreign *firewall.Foreign) (text, digest string) {
	text = foreign.OwnText(f.LiveText[fam])
	sum := sha256.Sum256([]byte(text))
	return text, hex.EncodeToString(sum[:])
}

// Fingerprint identifies the host's state as the plan saw it, others'
// rules apart: a saved plan is applied only to a host whose fingerprint
// is still the same.
func (f *Facts) Fingerprint(foreign *firewall.Foreign) string {
	_, v4 := f.Own(firewall.IPv4, foreign)
	_, v6 := f.Own(firewall.IPv6, foreign)
	h := sha256.New()
	fmt.Fprintf(h, "v4 %s\nv6 %s\ngeneration %d\npersisted %s %s\n", v4, v6,
		f.Generation, f.Persisted[firewall.IPv4], f.Persisted[firewall.IPv6])
	return hex.EncodeToString(h.Sum(nil))
}

// FactsRequest says what to gather beyond the facts every run needs.
type FactsRequest struct {
	Names []string // DNS names to resolve on the host
	// Rollback asks for the rulesets of a generation: N, or Previous for
	// the one before the current, where a plain rollback goes. 0 asks for
	// none.
	Rollback int
	History  bool // the metadata of every generation
	// PersistedRules asks for the persisted rules files themselves, not
	// only their digests (Facts.PersistedText).
	PersistedRules bool
	// Status asks for each run's dead-man (Facts.Runs) and the filter
	// tables with their counters (Facts.Counters).
	Status bool
	Paths  Paths // where the host keeps things: the zero value but in tests
}

// Previous, as FactsRequest.Rollback, is the generation before the
// current one. The host works out which that is: piwall never computes it.
const Previous = -1

// FactsScript is the script that gathers a host's facts, run as root with
// the login shell's $SSH_CONNECTION as its first argument: a header, the
// functions of facts.sh, and a line calling one of them for each part of
// req. Its output is sections, each headed by a line with marker, which
// ParseFacts reads.
func FactsScript(marker string, req FactsRequest) string {
	p := req.Paths.resolved()
	var b strings.Builder
	b.WriteString(assignments(factsHeader{
		PATH: p.PATH, Marker: marker,
		Current: p.currentFile(), Gens: p.generationsDir(), Lock: p.lockFile(), Foreign: p.foreignFile(), NamesDir: p.namesDir(), RunsDir: p.resolved().StateDir + "/runs",
		RulesV4: p.rules("v4"), RulesV6: p.rules("v6"), ResolvConf: p.ResolvConf, BootID: p.BootID,
		RulesDir: p.RulesDir, SystemdDir: p.SystemdDir, PluginsDir: p.PluginsDir, UFWConf: p.UFWConf,
		Mountinfo: p.Mountinfo, Cmdline: p.Cmdline, Proc: p.Proc,
	}))
	b.WriteString(scriptFile("facts.sh"))
	b.WriteString("facts\n")
	for _, n := range req.Names {
		b.WriteString("name " + Quote(n) + "\n")
	}
	switch {
	case req.Rollback == Previous:
		b.WriteString("rollback_to previous\n")
	case req.Rollback != 0:
		b.WriteString("rollback_to " + Quote(strconv.Itoa(req.Rollback)) + "\n")
	}
	if req.History {
		b.WriteString("history\n")
	}
	if req.PersistedRules {
		b.WriteString("persisted_rules\n")
	}
	if req.Status {
		b.WriteString("status_facts\n")
	}
	b.WriteString("sec end\n")
	return b.String()
}

// ParseFacts reads the output of FactsScript.
func ParseFacts(out, marker string) (*Facts, error) {
	f := &Facts{
		Tools:         map[string]bool{},
		Live:          map[firewall.Family]*firewall.Ruleset{},
		LiveText:      map[firewall.Family]string{},
		Persisted:     map[firewall.Family]string{},
		PersistedText: map[firewall.Family]string{},
		Counters:      map[firewall.Family]string{},
		Names:         map[string]firewall.Resolution{},
		NameErrors:    map[string]string{},
		Refreshed:     map[string]*NameState{},
	}
	sections, err := splitSections(out, marker)
	if err != nil {
		return nil, err
	}
	// A cut output is told as such, not as whatever its last section,
	// cut short, fails to parse as.
	complete := false
	for _, s := range sections {
		complete = complete || s.name == "end"
	}
	if !complete {
		return nil, fmt.Errorf("facts: the output ends early (the script did not finish)")
	}
	live := map[string][]string{}
	var mounts []string
	for _, s := range sections {
		body := strings.Join(s.lines, "\n")
		switch s.name {
		case "ssh":
			err = f.parseSSHConnection(strings.TrimSpace(body))
		case "tools":
			for _, t := range s.lines {
				if t = strings.TrimSpace(t); t != "" {
					f.Tools[t] = true
				}
			}
		case "v4", "v6", "v4-error", "v6-error":
			live[s.name] = s.lines
		case "backend":
			switch v := strings.TrimSpace(body); {
			case strings.Contains(v, "(nf_tables)"):
				f.Backend = "nf_tables"
			case strings.Contains(v, "(legacy)"):
				f.Backend = "legacy"
			}
		case "other":
			err = f.parseOther(s.lines)
		case "route":
			f.Iface = routeDev(s.lines)
		case "resolv":
			f.Resolvers = firewall.ParseResolvConf(body)
		case "generation":
			if g := strings.TrimSpace(body); g != "" {
				f.Generation, err = strconv.Atoi(g)
			}
		case "lock":
			f.Lock, err = parseLock(s.lines)
		case "boot":
			f.Boot = strings.TrimSpace(body)
		case "restore":
			f.Restore = parseRestore(s.lines)
		case "addrs":
			f.Addrs = parseAddrs(s.lines)
		case "daemons":
			f.Daemons = map[string]bool{}
			for _, d := range s.lines {
				if d = strings.TrimSpace(d); d != "" {
					f.Daemons[d] = true
				}
			}
		case "rules-dir":
			f.RulesFS.Dir = strings.TrimSpace(body)
		case "mounts":
			mounts = s.lines
		case "cmdline":
			f.RulesFS.OverlayBoot = slices.Contains(strings.Fields(body), "boot=overlay")
		case "foreign":
			f.Foreign, err = firewall.ParseForeign(body)
		case "persisted":
			if len(s.lines) >= 2 {
				f.Persisted[firewall.IPv4], f.Persisted[firewall.IPv6] = strings.TrimSpace(s.lines[0]), strings.TrimSpace(s.lines[1])
			}
		case "runs":
			f.Runs = parseRuns(s.lines)
		case "counters-v4":
			f.Counters[firewall.IPv4] = body
		case "counters-v6":
			f.Counters[firewall.IPv6] = body
		case "persisted-v4":
			f.PersistedText[firewall.IPv4] = NormalizeSave(body)
		case "persisted-v6":
			f.PersistedText[firewall.IPv6] = NormalizeSave(body)
		case "name":
			f.parseName(s.lines)
		case "refresher":
			err = f.parseRefresher(s.lines)
		case "generation-v4", "generation-v6", "generation-sets", "generation-names":
			err = f.parseGeneration(s)
		case "history":
			for _, line := range s.lines {
				if strings.TrimSpace(line) == "" {
					continue
				}
				g, gerr := ParseGeneration([]byte(line))
				if gerr != nil {
					return nil, fmt.Errorf("facts, section history: %w", gerr)
				}
				f.History = append(f.History, g)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("facts, section %s: %w", s.name, err)
		}
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if err := f.parseLive(fam, live); err != nil {
			return nil, fmt.Errorf("facts, %w", err)
		}
	}
	if f.RulesFS.Dir != "" {
		overlay := f.RulesFS.OverlayBoot
		if f.RulesFS, err = parseMounts(f.RulesFS.Dir, mounts); err != nil {
			return nil, fmt.Errorf("facts, section %w", err)
		}
		f.RulesFS.OverlayBoot = overlay
	}
	if g := f.RollbackTo; g != nil {
		g.Found = g.V4 != "" && g.V6 != ""
	}
	return f, nil
}

type factSection struct {
	name  string
	lines []string
}

func splitSections(out, marker string) ([]factSection, error) {
	var sections []factSection
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, marker+" "); ok {
			sections = append(sections, factSection{name: name})
			continue
		}
		if len(sections) == 0 {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("facts: unexpected output before the first section: %q", line)
		}
		sections[len(sections)-1].lines = append(sections[len(sections)-1].lines, line)
	}
	// Drop the empty last line each section has from the final newline.
	for i := range sections {
		l := sections[i].lines
		for len(l) > 0 && l[len(l)-1] == "" {
			l = l[:len(l)-1]
		}
		sections[i].lines = l
	}
	return sections, nil
}

// parseOther reads the other backend's filter table: the tool, then what
// it printed.
func (f *Facts) parseOther(lines []string) error {
	if len(lines) == 0 {
		return errors.New("no tool named")
	}
	tool := strings.TrimSpace(lines[0])
	rs, err := firewall.Parse(NormalizeSave(strings.Join(lines[1:], "\n")))
	if err != nil {
		return fmt.Errorf("%s: %w", tool, err)
	}
	if f.Other == nil {
		f.Other = map[string]*firewall.Ruleset{}
	}
	f.Other[tool] = rs
	return nil
}

// routeDev is the interface of `ip -o route get ADDR`'s answer: "ADDR dev
// IFACE src ...", or "" for none.
func routeDev(lines []string) string {
	for _, l := range lines {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "dev" {
				return f[i+1]
			}
		}
	}
	return ""
}

// parseSSHConnection reads "client_ip client_port server_ip server_port".
func (f *Facts) parseSSHConnection(s string) error {
	fields := strings.Fields(s)
	if len(fields) != 4 {
		return fmt.Errorf("SSH_CONNECTION is %q, want four fields", s)
	}
	var err error
	if f.Operator, err = netip.ParseAddr(fields[0]); err != nil {
		return err
	}
	if f.Self, err = netip.ParseAddr(fields[2]); err != nil {
		return err
	}
	f.Operator, f.Self = f.Operator.Unmap(), f.Self.Unmap()
	if f.SSHPort, err = strconv.Atoi(fields[3]); err != nil {
		return err
	}
	if f.SSHPort < 1 || f.SSHPort > 65535 {
		return fmt.Errorf("SSH_CONNECTION is %q: port %d out of range", s, f.SSHPort)
	}
	return nil
}

// parseLive reads a family's live rules, as iptables-save printed them,
// and the error it printed if it failed.
func (f *Facts) parseLive(fam firewall.Family, live map[string][]string) error {
	sec, save := "v4", "iptables-save"
	if fam == firewall.IPv6 {
		sec, save = "v6", "ip6tables-save"
	}
	if stderr, failed := live[sec+"-error"]; failed {
		return fmt.Errorf("section %s: %s failed: %s", sec, save, strings.Join(stderr, " "))
	}
	lines, ok := live[sec]
	if !ok {
		return nil
	}
	text := NormalizeSave(strings.Join(lines, "\n"))
	f.LiveText[fam] = text
	rs, err := firewall.Parse(text)
	if err != nil {
		return fmt.Errorf("section %s: %w", sec, err)
	}
	f.Live[fam] = rs
	return nil
}

// chainCounters is a chain line with its packet and byte counters.
var chainCounters = regexp.MustCompile(`^(:[^ ]* [^ ]*) \[[0-9]*:[0-9]*\]$`)

// NormalizeSave is the form of iptables-save's output that piwall compares
// and digests: without comment lines, chain counters zeroed, one newline
// at the end. It is what the scripts' normalize (sed) makes of
// "$(iptables-save)", byte for byte: prepare digests the rules it saves
// that way, and the plan's digest of the facts must be the same.
func NormalizeSave(raw string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(raw, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		b.WriteString(chainCounters.ReplaceAllString(line, "$1 [0:0]"))
		b.WriteByte('\n')
	}
	return b.String()
}

// parseName reads a name and `getent ahosts` lines: "ADDR STREAM canonical",
// then "ADDR DGRAM", ...; the canonical name shows the end of a CNAME chain.
func (f *Facts) parseName(lines []string) {
	if len(lines) == 0 {
		return
	}
	name := strings.TrimSpace(lines[0])
	r := firewall.Resolution{Name: name}
	seen := map[netip.Addr]bool{}
	for i, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) >= 1 && fields[0] == "error" {
			f.NameErrors[name] = "does not resolve on the host (getent ahosts " + strings.Join(fields[1:], " ") + ")"
			return
		}
		if len(fields) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			r.Addrs = append(r.Addrs, a)
		}
		if i == 0 && len(fields) >= 3 && !strings.EqualFold(strings.TrimSuffix(fields[2], "."), name) {
			r.CNAMEs = []string{strings.TrimSuffix(fields[2], ".")}
		}
	}
	firewall.SortAddrs(r.Addrs)
	if len(r.Addrs) == 0 {
		f.NameErrors[name] = "has no addresses on the host"
		return
	}
	f.Names[name] = r
}

// parseGeneration reads a section generation-v4 or generation-v6: the
// generation's number, then its rules, or "error" when the host lacks them.
func (f *Facts) parseGeneration(s factSection) error {
	if len(s.lines) == 0 {
		return fmt.Errorf("empty")
	}
	n, err := strconv.Atoi(strings.TrimSpace(s.lines[0]))
	if err != nil {
		return err
	}
	if f.RollbackTo == nil {
		f.RollbackTo = &GenerationRules{Number: n}
	} else if f.RollbackTo.Number != n {
		return fmt.Errorf("generation %d, after generation %d", n, f.RollbackTo.Number)
	}
	body := strings.Join(s.lines[1:], "\n")
	if strings.TrimSpace(body) == "error" || strings.HasSuffix(body, "\nerror") || strings.TrimSpace(body) == "" {
		return nil // not on the host; Rollback says so
	}
	switch s.name {
	case "generation-v6":
		f.RollbackTo.V6 = body + "\n"
	case "generation-sets":
		f.RollbackTo.Sets = body + "\n"
	case "generation-names":
		f.RollbackTo.Names = body + "\n"
	default:
		f.RollbackTo.V4 = body + "\n"
	}
	return nil
}

// parseLock reads the lock file: run=, operator=, since= and expires=
// lines, the times in seconds since 1970, and boot=. An empty section is a
// free lock.
func parseLock(lines []string) (*Lock, error) {
	var l Lock
	empty := true
	for _, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		empty = false
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "run":
			l.Run = v
		case "boot":
			l.Boot = v
		case "operator":
			l.Operator = v
		case "since", "expires":
			secs, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is %q, want seconds since 1970", k, v)
			}
			if k == "since" {
				l.Since = time.Unix(secs, 0).UTC()
			} else {
				l.Expires = time.Unix(secs, 0).UTC()
			}
		}
	}
	if empty {
		return nil, nil
	}
	return &l, nil
}

// NameState is what a host's names' refresher keeps of one name: the
// addresses its sets hold, each with when the name last answered with it,
// and how its last refreshes went.
type NameState struct {
	Name      string
	Set       string // its IPv4 set, which names its state on the host
	Addrs     []netip.Addr
	LastSeen  map[netip.Addr]time.Time
	Refreshed time.Time // the last lookup that answered; zero: none yet
	Failed    time.Time // the last lookup that did not, when after Refreshed
	Error     string    // what it said
}

// parseRefresher reads the refresher section: "name SET NAME", then its
// "addr ADDR SECONDS", "refreshed SECONDS" and "failed SECONDS MESSAGE"
// lines (seconds since 1970).
func (f *Facts) parseRefresher(lines []string) error {
	var cur *NameState
	secs := func(s string) (time.Time, error) {
		if s == "" {
			return time.Time{}, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not seconds since 1970", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "name" {
			if len(fields) != 3 {
				return fmt.Errorf("refresher: %q: want name SET NAME", line)
			}
			cur = &NameState{Set: fields[1], Name: fields[2], LastSeen: map[netip.Addr]time.Time{}}
			f.Refreshed[cur.Name] = cur
			continue
		}
		if cur == nil {
			return fmt.Errorf("refresher: %q before a name", line)
		}
		var err error
		switch fields[0] {
		case "addr":
			if len(fields) != 3 {
				return fmt.Errorf("refresher: %q: want addr ADDR SECONDS", line)
			}
			a, perr := netip.ParseAddr(fields[1])
			if perr != nil {
				return fmt.Errorf("refresher: %w", perr)
			}
			cur.Addrs = append(cur.Addrs, a.Unmap())
			cur.LastSeen[a.Unmap()], err = secs(fields[2])
		case "refreshed":
			cur.Refreshed, err = secs(strings.Join(fields[1:], ""))
		case "failed":
			if len(fields) < 2 {
				return fmt.Errorf("refresher: %q: want failed SECONDS MESSAGE", line)
			}
			cur.Failed, err = secs(fields[1])
			cur.Error = strings.Join(fields[2:], " ")
		}
		if err != nil {
			return fmt.Errorf("refresher: %w", err)
		}
	}
	for _, st := range f.Refreshed {
		firewall.SortAddrs(st.Addrs)
	}
	return nil
}
