package firewall

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// piwall owns its part of a host's filter table: the policies of the
// built-in chains, and every rule and chain of the table that is not
// someone else's. Someone else's are the chains a plan keeps (keep_chains,
// and every chain a kept chain jumps or goes to), what the owners a plan
// names (coexist) put into the table, and the jumps and gotos to any of
// them. Other tables are never piwall's.
//
// Foreign says which lines of iptables-save's output are someone else's:
// it is a list of extended regular expressions, each matching whole lines
// of the filter table. The same list is uploaded with a run (foreign.re),
// where grep -E -f reads it, so that the host and piwall split a table the
// same way. The expressions use only what ERE and Go's syntax share and
// mean alike: anchors, literals, [^ ], * and alternation.
type Foreign struct {
	exprs []string
	res   []*regexp.Regexp
}

// ownerChains and ownerRules are what each owner of plans.Owners puts into
// the filter table, on every layout it has had: chain globs (their
// declarations, their rules and the jumps to them) and rules of the
// built-in chains, as expressions.
var (
	ownerChains = map[string][]string{
		// DOCKER, DOCKER-USER, DOCKER-ISOLATION-STAGE-1/2 (every layout),
		// DOCKER-FORWARD, DOCKER-BRIDGE, DOCKER-CT, DOCKER-INTERNAL (28).
		"docker":    {"DOCKER*"},
		"fail2ban":  {"f2b-*"},
		"tailscale": {"ts-*"},
	}
	ownerRules = map[string][]string{
		// Before Docker 28 (Debian bookworm's docker.io 20.10 among them),
		// the forwarding rules of the default bridge and of each user
		// network's br-* bridge sit in FORWARD itself.
		"docker":    {`^-A FORWARD (.* )?-[io] (docker0|br-[^ ]+)( |$)`},
		"tailscale": {`^-A (INPUT|FORWARD|OUTPUT) (.* )?-[io] tailscale0( |$)`},
	}
)

// Owners are the owners Foreign knows, sorted: plans.Owners, each with
// its rules here.
func Owners() []string {
	var names []string
	for n := range ownerChains {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewForeign is the declaration of a plan: its keep_chains globs and
// coexist owners. Chains that a kept chain of a live ruleset jumps or goes
// to are kept too, by name: a kept chain keeps working. A glob that
// matches a built-in chain keeps nothing (plans refuses it).
func NewForeign(keepChains, owners []string, live ...*Ruleset) (*Foreign, error) {
	var globs, exprs []string
	for _, o := range owners {
		chains, ok := ownerChains[o]
		if !ok {
			return nil, fmt.Errorf("coexist: unknown owner %q (known: %s)", o, strings.Join(Owners(), ", "))
		}
		globs = append(globs, chains...)
		exprs = append(exprs, ownerRules[o]...)
	}
	for _, g := range keepChains {
		if !isBuiltin(g) {
			globs = append(globs, g)
		}
	}
	chains := make([]string, 0, len(globs))
	for _, g := range globs {
		chains = append(chains, globExpr(g))
	}
	for _, name := range reached(globs, live) {
		if c, ok := literalExpr(name); ok {
			chains = append(chains, c)
		}
	}
	for _, c := range chains {
		exprs = append(exprs,
			`^:`+c+` - `,                       // its declaration
			`^-A `+c+`( |$)`,                   // its rules
			`^-A [^ ]+ (.* )?-[jg] `+c+`( |$)`, // the jumps and gotos to it
		)
	}
	return newForeign(dedupe(exprs))
}

// ParseForeign reads a declaration as Text wrote it: one expression a line.
func ParseForeign(text string) (*Foreign, error) {
	var exprs []string
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if line == "" && i == 0 {
			continue
		}
		if line == "" || !strings.HasPrefix(line, "^") || strings.ContainsAny(line, "\\{}\r") {
			return nil, fmt.Errorf("foreign rules, line %d: %q is not an expression piwall writes", i+1, line)
		}
		exprs = append(exprs, line)
	}
	return newForeign(exprs)
}

// ownLines are lines of a filter table that are piwall's whatever a
// declaration says: an expression that matches one is refused.
var ownLines = []string{"*filter", "COMMIT",
	":INPUT ACCEPT [0:0]", ":INPUT DROP [0:0]", ":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]", ":OUTPUT DROP [0:0]"}

func newForeign(exprs []string) (*Foreign, error) {
	f := &Foreign{exprs: exprs}
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("foreign rules: %w", err)
		}
		for _, l := range ownLines {
			if re.MatchString(l) {
				return nil, fmt.Errorf("foreign rules: %q would take %q, which is piwall's", e, l)
			}
		}
		f.res = append(f.res, re)
	}
	return f, nil
}

// Text is the declaration as uploaded: one expression a line ("" for
// none, which grep -f reads as no pattern: nothing is foreign).
func (f *Foreign) Text() string {
	if f == nil || len(f.exprs) == 0 {
		return ""
	}
	return strings.Join(f.exprs, "\n") + "\n"
}

// Has reports whether a line of iptables-save's filter table is someone
// else's.
func (f *Foreign) Has(line string) bool {
	if f == nil {
		return false
	}
	for _, re := range f.res {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

// defaultFilter is the filter table of a host whose tables were never
// loaded: every built-in chain ACCEPT and empty.
const defaultFilter = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"

// OwnText is piwall's part of a family's rules: of save, iptables-save's
// output as NormalizeSave makes it, the filter table without the lines
// that are someone else's, or the kernel's defaults when there is no
// filter table. It is what the scripts' own prints, byte for byte:
// prepare and confirm compare it, and the plan digests it.
func (f *Foreign) OwnText(save string) string {
	var b strings.Builder
	in := false
	for line := range strings.Lines(save) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case !in && line == "*filter":
			in = true
		case !in:
			continue
		}
		if !f.Has(line) {
			b.WriteString(line + "\n")
		}
		if line == "COMMIT" {
			break
		}
	}
	if b.Len() == 0 {
		return defaultFilter
	}
	return b.String()
}

// Own is piwall's part of a live ruleset (nil: a host with no tables),
// split as OwnText splits its text.
func (f *Foreign) Own(live *Ruleset) (*Ruleset, error) {
	if live == nil {
		live = &Ruleset{}
	}
	return Parse(f.OwnText(live.Text()))
}

// Merge is the filter table the kernel holds once own is loaded as
// piwall's part over live: the built-in chains with own's policies, live's
// foreign rules first, in their order, then own's; live's foreign chains
// as they are; own's chains.
func (f *Foreign) Merge(own, live *Ruleset) *Ruleset {
	want, have := own.Table("filter"), LiveFilter(live).Table("filter")
	t := &Table{Name: "filter"}
	for _, c := range want.Chains {
		m := &Chain{Name: c.Name, Policy: c.Policy}
		if h := have.Chain(c.Name); h != nil && c.Policy != "-" {
			for _, r := range h.Rules {
				if f.Has(r.Line(c.Name)) {
					m.Rules = append(m.Rules, r)
				}
			}
		}
		m.Rules = append(m.Rules, c.Rules...)
		t.Chains = append(t.Chains, m)
	}
	for _, c := range have.Chains {
		if c.Policy == "-" && want.Chain(c.Name) == nil && f.Has(":"+c.Name+" - [0:0]") {
			t.Chains = append(t.Chains, c)
		}
	}
	return &Ruleset{Tables: []*Table{t}}
}

// reached are the chains of live that chains matching globs jump or go to,
// directly or through each other, and no glob matches.
func reached(globs []string, live []*Ruleset) []string {
	var out []string
	for _, rs := range live {
		filter := rs.Table("filter")
		if filter == nil {
			continue
		}
		kept := func(name string) bool {
			return slices.ContainsFunc(globs, func(g string) bool { ok, _ := path.Match(g, name); return ok }) || slices.Contains(out, name)
		}
		for changed := true; changed; {
			changed = false
			for _, c := range filter.Chains {
				if c.Policy != "-" || !kept(c.Name) {
					continue
				}
				for _, r := range c.Rules {
					if t := filter.Chain(r.Target()); t != nil && t.Policy == "-" && !kept(t.Name) {
						out = append(out, t.Name)
						changed = true
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// globExpr is a chain glob (letters, digits, '_', '.', '-', '*', '?') as
// an expression matching the chain's name in a line.
func globExpr(g string) string {
	var b strings.Builder
	for _, c := range g {
		switch c {
		case '*':
			b.WriteString(`[^ ]*`)
		case '?':
			b.WriteString(`[^ ]`)
		case '.':
			b.WriteString(`[.]`)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// literalExpr is a chain's name as an expression that matches it alone,
// each character but letters, digits, '_' and '-' in brackets; false for
// a name that has ']', '^', '\\' or a space, which stay piwall's.
func literalExpr(name string) (string, bool) {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			b.WriteRune(c)
		case c == ']' || c == '^' || c == '\\' || c <= ' ' || c > '~':
			return "", false
		default:
			b.WriteString("[" + string(c) + "]")
		}
	}
	return b.String(), true
}

func isBuiltin(glob string) bool {
	return slices.ContainsFunc(builtins, func(b string) bool { ok, _ := path.Match(glob, b); return ok })
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
