package modules

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// ChangeSet is what `piwall plan` computes for one host: its desired
// rulesets, the facts they were compared with, and the changes between.
type ChangeSet struct {
	Host   string
	Source string // what the desired rules came from: the plan's digest, or "rollback to generation N"
	// Desired is piwall's part of the host's filter tables; Foreign says
	// what of the live tables is someone else's, never compared, changed
	// or persisted.
	Desired *firewall.Desired
	Foreign *firewall.Foreign
	Changes []firewall.Change
	// Sets is the `ipset restore` document of the address sets the desired
	// rules match (firewall.Desired.SetsText), NamesConf the host's names'
	// refresher's configuration; a rollback takes both from the
	// generation it goes back to.
	Sets, NamesConf string
	// Refresh says, for each name the host refreshes, what its sets hold
	// and how the refresher has fared.
	Refresh    []NameReport
	Install    bool   // iptables and netfilter-persistent are missing
	InstallWhy string // what is missing, when Install
	// EnableRestore: netfilter-persistent is disabled, and apply enables
	// it, so that the boot loads the rules.
	EnableRestore bool
	// RulesInert: nothing loads the host's rules files at boot today
	// (netfilter-persistent missing, without its plugins, or disabled).
	RulesInert bool
	// Ephemeral says why the rules persisted on the host are gone at its
	// next boot (an overlay or tmpfs root); apply refuses such a host
	// unless told the rules are meant to last until then.
	Ephemeral   string
	Fingerprint string // of the facts: a saved plan applies only if it still holds
	ExpectV4    string // digests of piwall's part of the live rulesets planned against
	ExpectV6    string
	// Lockout says why the desired rulesets would not admit the operator's
	// next SSH connection; apply refuses them unless forced.
	Lockout error
	// Kept says which of the host's own network services (DHCP, DHCPv6,
	// MLD, mDNS) the desired rules keep working, and why.
	Kept []string
	// Warnings are things the operator should know that do not stop apply.
	Warnings []string
	Facts    *Facts
}

// Unchanged reports whether applying would change nothing.
func (c *ChangeSet) Unchanged() bool { return len(c.Changes) == 0 && !c.Install && !c.EnableRestore }

// Counts returns how many rules and chains are added, removed and updated.
func (c *ChangeSet) Counts() (add, remove, update int) {
	for _, ch := range c.Changes {
		switch ch.Action {
		case firewall.Add:
			add++
		case firewall.Remove:
			remove++
		default:
			update++
		}
	}
	return
}

// NewChangeSet computes a host's change set from its merged allowlists and
// its facts.
func NewChangeSet(h *plans.Host, f *Facts) (*ChangeSet, error) {
	names := maps.Clone(f.Names)
	var msgs, warnings []string
	for _, name := range firewall.Names(h.Policy) { // errors of names this host does not use do not count
		e, failed := f.NameErrors[name]
		if !failed {
			continue
		}
		// A name the host refreshes keeps its last-known addresses through
		// a failed lookup, on the host and so in the plan.
		if st := f.Refreshed[name]; h.Policy.DNSRefresh > 0 && st != nil && len(st.Addrs) > 0 {
			names[name] = firewall.Resolution{Name: name, Addrs: st.Addrs}
			warnings = append(warnings, fmt.Sprintf("%s %s; its sets keep the addresses last seen (%s), as the host's refresher does", name, e, addrList(st.Addrs)))
			continue
		}
		msgs = append(msgs, name+" "+e)
	}
	if len(msgs) > 0 {
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	svc, kept := services(h.Policy.Keep, f, h.Address.V)
	d, err := firewall.Compile(firewall.Input{Policy: h.Policy, Names: names, Resolvers: f.Resolvers, Services: svc})
	if err != nil {
		return nil, err
	}
	foreign, err := firewall.NewForeign(h.Policy.KeepChains, h.Policy.Coexist, f.Live[firewall.IPv4], f.Live[firewall.IPv6])
	if err != nil {
		return nil, err
	}
	c, err := Compare(h.Name, d, foreign, f, d.SetsText())
	if err != nil {
		return nil, err
	}
	c.NamesConf = NamesConf(d)
	c.Refresh = nameReports(d, f)
	c.Warnings = append(warnings, c.Warnings...)
	c.Kept = kept
	if h.Policy.DNS.Mode == "system" {
		for _, r := range f.Resolvers {
			if r.IsLoopback() {
				c.Warnings = append(c.Warnings, fmt.Sprintf("the host resolves through %s, a local stub (systemd-resolved, dnsmasq): "+
					"the upstream servers it asks are not allowed, so lookups on the host will fail; list them with dns = [...]", r))
			}
		}
	}
	return c, nil
}

// Compare diffs desired rulesets, piwall's part, against piwall's part of
// a host's live ones, and checks the tables the host will then hold (its
// others' rules first, the address sets as sets fills them) admit the
// operator.
func Compare(host string, d *firewall.Desired, foreign *firewall.Foreign, f *Facts, sets string) (*ChangeSet, error) {
	if err := bothBackends(f); err != nil {
		return nil, err
	}
	if err := bootRestore(f); err != nil {
		return nil, err
	}
	// What piwall loads and persists is its part only: a desired line
	// that is someone else's would overwrite theirs.
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		for line := range strings.Lines(d.Family(fam).Text()) {
			if line = strings.TrimSuffix(line, "\n"); foreign.Has(line) {
				return nil, fmt.Errorf("the desired %s rules hold %q, which the plan declares someone else's", fam, line)
			}
		}
	}
	c := &ChangeSet{
		Host: host, Desired: d, Foreign: foreign, Facts: f, Sets: sets,
		Install:     f.NeedsIptables(),
		Fingerprint: f.Fingerprint(foreign),
		Ephemeral:   f.RulesFS.Ephemeral(),
	}
	// Rules that match address sets need ipset, and ipset-persistent to
	// load the sets at boot before the rules: without it the boot's
	// iptables-restore refuses the rules, and the host boots open.
	setsMissing := sets != "" && (!f.Tools["ipset"] || !f.Restore.setsLoad())
	if setsMissing && !c.Install {
		c.Install = true
		c.InstallWhy = "the rules match names' address sets: ipset and ipset-persistent are not installed"
	} else if c.Install {
		c.InstallWhy = "not installed"
		if m := f.Restore.missing(); len(m) > 0 && f.Tools["netfilter-persistent"] {
			c.InstallWhy = "the boot would not load the rules: missing " + strings.Join(m, ", ")
		}
	}
	c.EnableRestore = f.Restore.disabled()
	c.RulesInert = !f.Tools["netfilter-persistent"] || len(f.Restore.missing()) > 0 || c.EnableRestore
	if c.Ephemeral != "" {
		c.Warnings = append(c.Warnings, c.Ephemeral+"; apply refuses it unless --until-reboot")
	}
	merged := map[firewall.Family]*firewall.Ruleset{}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		text, digest := f.Own(fam, foreign)
		if fam == firewall.IPv4 {
			c.ExpectV4 = digest
		} else {
			c.ExpectV6 = digest
		}
		own, err := firewall.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("piwall's part of the live %s rules: %w", fam, err)
		}
		c.Changes = append(c.Changes, firewall.Diff(fam, d.Family(fam), own)...)
		merged[fam] = foreign.Merge(d.Family(fam), f.Live[fam])
	}
	if f.Operator.IsValid() {
		if err := firewall.CheckSSH(merged[firewall.IPv4], merged[firewall.IPv6], f.Operator, f.Self, uint16(f.SSHPort), f.Iface, firewall.ParseSetMembers(sets)); err != nil {
			c.Lockout = WithHint(err, fmt.Sprintf("the plan must admit %s → tcp/%d; --force applies it anyway, and the dead-man reverts it", f.Operator, f.SSHPort))
		}
	}
	switch l := f.Lock; {
	case l == nil:
	case l.Boot != "" && f.Boot != "" && l.Boot != f.Boot:
		c.Warnings = append(c.Warnings, fmt.Sprintf("a lock of %s (run %s, since %s) was left by a run the host's reboot ended; the next apply or rollback takes it over",
			l.Operator, l.Run, l.Since.Format(lockTime)))
	default:
		c.Warnings = append(c.Warnings, fmt.Sprintf("locked by %s since %s (run %s); apply is refused until it is released or expires at %s",
			l.Operator, l.Since.Format(lockTime), l.Run, l.Expires.Format(lockTime)))
	}
	return c, nil
}

// bootRestore refuses a host whose boot would not load the persisted
// rules and piwall cannot make it: another firewall's service enabled,
// netfilter-persistent masked, the rules directory read-only.
func bootRestore(f *Facts) error {
	if what, hint := f.Restore.conflict(); what != "" {
		return WithHint(errors.New(what), hint)
	}
	if fs := f.RulesFS; fs.ReadOnly {
		return WithHint(fmt.Errorf("%s is on a read-only file system (%s, mounted on %s): the rules could not be persisted", fs.Dir, fs.Type, fs.MountPoint),
			fmt.Sprintf("make it writable (sudo mount -o remount,rw %s), then run piwall again", fs.MountPoint))
	}
	return nil
}

// bothBackends refuses a host whose other iptables backend has filter
// rules too: the kernel runs packets through both, so piwall's rules would
// not be the whole story, whatever the lockout check says.
func bothBackends(f *Facts) error {
	for tool, rs := range f.Other {
		t := rs.Table("filter")
		if t == nil {
			continue
		}
		rules := 0
		closed := false
		for _, c := range t.Chains {
			rules += len(c.Rules)
			closed = closed || (c.Policy != "-" && c.Policy != "ACCEPT")
		}
		if rules == 0 && !closed {
			continue
		}
		other := "legacy"
		if f.Backend == "legacy" {
			other = "nf_tables"
		}
		n := fmt.Sprintf("%d rules", rules)
		if rules == 1 {
			n = "1 rule"
		}
		return WithHint(fmt.Errorf("the host has filter rules in both iptables backends, %s (piwall's, iptables) and %s (%s): the kernel runs packets through both", f.Backend, other, n),
			fmt.Sprintf("see them with: sudo %s -t filter; remove them, or have the tool that loads them use %s; --force does not override this", tool, f.Backend))
	}
	return nil
}

// lockTime is how a lock's times are written in warnings.
const lockTime = "2006-01-02 15:04:05Z07:00"

// Rollback computes the change set that puts a host back to the rulesets
// of f.RollbackTo, the generation FactsRequest.Rollback asked for, or, with
// open, to an empty ruleset with every policy ACCEPT.
func Rollback(host string, f *Facts, open bool) (*ChangeSet, error) {
	v4, v6, what, source := OpenRuleset, OpenRuleset, "the open ruleset", "rollback --open"
	if !open {
		g := f.RollbackTo
		switch {
		case g == nil:
			return nil, errors.New("the facts hold no generation to roll back to")
		case g.Number < 1:
			return nil, WithHint(fmt.Errorf("no generation before the current one (%d) to roll back to", f.Generation), "piwall history "+host)
		case !g.Found:
			return nil, WithHint(fmt.Errorf("generation %d is not on the host", g.Number), "piwall history "+host)
		}
		v4, v6, what = g.V4, g.V6, fmt.Sprintf("generation %d", g.Number)
		source = "rollback to " + what
	}
	// Others' rules stay as the host's current generation declared them;
	// a generation written before piwall kept to its part holds theirs
	// too, which are not piwall's to load.
	foreign := f.Foreign
	d := &firewall.Desired{}
	for _, r := range []struct {
		fam  firewall.Family
		text string
		rs   **firewall.Ruleset
	}{{firewall.IPv4, v4, &d.V4}, {firewall.IPv6, v6, &d.V6}} {
		rs, err := firewall.Parse(r.text)
		if err == nil {
			*r.rs, err = foreign.Own(rs)
		}
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", what, r.fam, err)
		}
	}
	sets, names := "", ""
	if !open {
		sets, names = f.RollbackTo.Sets, f.RollbackTo.Names
	}
	c, err := Compare(host, d, foreign, f, sets)
	if err != nil {
		return nil, err
	}
	c.NamesConf = names
	c.Source = source
	return c, nil
}

// OpenRuleset is the emergency opening: no rules, every policy ACCEPT.
const OpenRuleset = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"

// NameReport is what plan says of a name the host refreshes: what its
// sets hold now, what the name answers with now that they do not hold yet
// (the next refresh adds it) and what they hold that it no longer answers
// with (kept for the grace window), and the refresher's last runs.
type NameReport struct {
	Name      string        `json:"name"`
	Sets      []string      `json:"sets"`
	Every     time.Duration `json:"-"`
	EverySecs int           `json:"every_seconds"` // Every, in --json
	Held      []netip.Addr  `json:"held"`
	New       []netip.Addr  `json:"new,omitempty"`
	Gone      []netip.Addr  `json:"gone,omitempty"`
	Refreshed *time.Time    `json:"refreshed,omitempty"`
	Failed    *time.Time    `json:"failed,omitempty"`
	Error     string        `json:"error,omitempty"`
}

// nameReports compares each name's addresses now with what the host's
// refresher keeps of it; a name the host does not refresh yet holds what
// the plan saw, once applied.
func nameReports(d *firewall.Desired, f *Facts) []NameReport {
	var out []NameReport
	for _, s := range d.Sets {
		r := NameReport{Name: s.Name, Sets: []string{s.V4, s.V6}, Every: d.Refresh, EverySecs: int(d.Refresh / time.Second)}
		var now []netip.Addr
		for _, res := range d.Names {
			if res.Name == s.Name {
				now = res.Addrs
			}
		}
		if st := f.Refreshed[s.Name]; st != nil {
			r.Held = st.Addrs
			if !st.Refreshed.IsZero() {
				r.Refreshed = &st.Refreshed
			}
			if !st.Failed.IsZero() {
				r.Failed, r.Error = &st.Failed, st.Error
			}
		}
		for _, a := range now {
			if !slices.Contains(r.Held, a) {
				r.New = append(r.New, a)
			}
		}
		if _, failed := f.NameErrors[s.Name]; !failed {
			for _, a := range r.Held {
				if !slices.Contains(now, a) {
					r.Gone = append(r.Gone, a)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func addrList(addrs []netip.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}
