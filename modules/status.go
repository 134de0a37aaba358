package modules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// RunState is a run that armed a dead-man on the host, as the facts saw it.
type RunState struct {
	Run     string
	Status  Status // where the run stands: applied, confirmed, reverted, ...
	DeadMan string // DeadManSystemd or DeadManProcess
	// Waiting says the dead-man still waits: its timer is active, its
	// process alive. A run that is neither confirmed nor reverted and
	// whose dead-man waits will revert.
	Waiting bool
}

// parseRuns reads the runs section: "run NAME STATUS yes|no deadman=KIND ...".
func parseRuns(lines []string) []RunState {
	var rs []RunState
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "run" {
			continue
		}
		kind, _, _ := strings.Cut(strings.TrimPrefix(f[4], "deadman="), " ")
		rs = append(rs, RunState{Run: f[1], Status: Status(f[2]), Waiting: f[3] == "yes", DeadMan: kind})
	}
	return rs
}

// State is a host's state in one word, as status prints it.
type State string

const (
	InSync       State = "in sync"       // live = plan = persisted
	Drift        State = "drift"         // the live rules differ from the plan's
	NotPersisted State = "not persisted" // the live rules are the plan's, the persisted ones are not
	Reverting    State = "reverting"     // a run's new rules are live, unconfirmed, under a dead-man that waits
)

// HostState is what status says of a host: where its rules stand against
// the plan and the persisted files, who applied them when, what could
// change them next (a dead-man, a lock), whether its boot loads them, and
// with what counters they run.
type HostState struct {
	State   State
	Changes int    // the plan's changes (drift), 0 in sync
	Persist string // how the persisted rules differ from the live ones; "" when they match
	// Generation is the current generation and its record (nil on a host
	// piwall never changed).
	Generation *Generation
	DeadMan    *RunState // the run whose dead-man waits; nil when none does
	Lock       *Lock
	Boot       string // "loads the rules", or why it would not
	BootOK     bool
	Counters   []Counter // both families' chains and rules, with counters
	// Drops are the packets the rules dropped since they were loaded: the
	// built-in chains' DROP policies and every DROP or REJECT rule.
	Drops, DropBytes uint64
}

// NewState reads a host's state from its change set against the plan
// (made from facts gathered with FactsRequest{Status, History,
// PersistedRules}).
func NewState(cs *ChangeSet) (*HostState, error) {
	f := cs.Facts
	st := &HostState{Lock: f.Lock}
	if !cs.Unchanged() {
		st.Changes = len(cs.Changes)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if fd := persistedFinding(fam, cs.Foreign, f); !fd.OK {
			st.Persist = joinNonEmpty(st.Persist, fd.What+": "+fd.Seen)
		}
	}
	for i := range f.History {
		if f.History[i].Number == f.Generation {
			st.Generation = &f.History[i]
		}
	}
	if st.Generation == nil && f.Generation > 0 {
		st.Generation = &Generation{Number: f.Generation}
	}
	for i := range f.Runs {
		r := f.Runs[i]
		if r.Waiting && (r.Status == StatusPending || r.Status == StatusApplying || r.Status == StatusApplied) {
			st.DeadMan = &r
		}
	}
	st.Boot, st.BootOK = bootSays(f)
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		cs, err := ParseCounters(fam, f.Counters[fam])
		if err != nil {
			return nil, err
		}
		st.Counters = append(st.Counters, cs...)
	}
	for _, c := range st.Counters {
		if c.Dropping() {
			st.Drops += c.Packets
			st.DropBytes += c.Bytes
		}
	}
	switch {
	case st.DeadMan != nil:
		st.State = Reverting
	case st.Changes > 0:
		st.State = Drift
	case st.Persist != "":
		st.State = NotPersisted
	default:
		st.State = InSync
	}
	return st, nil
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// bootSays says whether the host's boot loads the persisted rules, and if
// not, why.
func bootSays(f *Facts) (string, bool) {
	if err := bootRestore(f); err != nil {
		return err.Error(), false
	}
	if e := f.RulesFS.Ephemeral(); e != "" {
		return e, false
	}
	if !f.Tools["netfilter-persistent"] {
		return "netfilter-persistent is not installed: the boot loads no rules", false
	}
	if m := f.Restore.missing(); len(m) > 0 {
		return "missing " + strings.Join(m, ", ") + ": the boot would not load the rules", false
	}
	if f.Restore.disabled() {
		return "netfilter-persistent is disabled: the boot loads no rules", false
	}
	return "loads the rules", true
}

// Counter is a chain's policy or a rule, with the packets and bytes that
// matched it since the rules were loaded.
type Counter struct {
	Family  firewall.Family
	Chain   string
	Policy  string // the built-in chain's policy; "" for a rule or a chain of its own
	Rule    string // the rule as iptables-save prints it, without its counters
	Packets uint64
	Bytes   uint64
}

// Dropping reports whether what c counts is dropped: a DROP policy, or a
// DROP or REJECT rule.
func (c Counter) Dropping() bool {
	if c.Rule == "" {
		return c.Policy == "DROP"
	}
	return strings.HasSuffix(c.Rule, " -j DROP") || strings.Contains(c.Rule, " -j REJECT")
}

// String is c as status --detailed prints it.
func (c Counter) String() string {
	what := c.Rule
	if what == "" {
		what = "policy " + c.Chain + " " + c.Policy
	}
	return fmt.Sprintf("v%d %s", c.Family, what)
}

var (
	chainLine   = regexp.MustCompile(`^:(\S+) (\S+) \[([0-9]+):([0-9]+)\]$`)
	counterRule = regexp.MustCompile(`^\[([0-9]+):([0-9]+)\] (-A (\S+) .*)$`)
)

// ParseCounters reads the filter table of iptables-save -c: each built-in
// chain's policy and each rule, with its counters. Other tables and lines
// are passed over; a counter that is not a number is an error.
func ParseCounters(fam firewall.Family, text string) ([]Counter, error) {
	var out []Counter
	in := false
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "*filter":
			in = true
			continue
		case strings.HasPrefix(line, "*"), line == "COMMIT":
			in = false
			continue
		case !in:
			continue
		}
		if m := chainLine.FindStringSubmatch(line); m != nil {
			if m[2] == "-" {
				continue // a chain of its own has no policy
			}
			p, b, err := counts(m[3], m[4])
			if err != nil {
				return nil, fmt.Errorf("counters: %q: %w", line, err)
			}
			out = append(out, Counter{Family: fam, Chain: m[1], Policy: m[2], Packets: p, Bytes: b})
		} else if m := counterRule.FindStringSubmatch(line); m != nil {
			p, b, err := counts(m[1], m[2])
			if err != nil {
				return nil, fmt.Errorf("counters: %q: %w", line, err)
			}
			out = append(out, Counter{Family: fam, Chain: m[4], Rule: m[3], Packets: p, Bytes: b})
		}
	}
	return out, nil
}

func counts(p, b string) (uint64, uint64, error) {
	np, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	nb, err := strconv.ParseUint(b, 10, 64)
	return np, nb, err
}

// Line is a generation's record in words: "generation 3,
// applied by pi@laptop at 2026-12-04 14:03:10Z".
func (g *Generation) Line() string {
	if g == nil {
		return "no generation (piwall never changed this host)"
	}
	s := "generation " + strconv.Itoa(g.Number)
	if g.Kind != "" {
		s += ", " + g.Kind
	}
	if g.Operator != "" {
		s += " by " + g.Operator
	}
	if !g.Time.IsZero() {
		s += " at " + g.Time.UTC().Format(time.DateTime) + "Z"
	}
	return s
}
