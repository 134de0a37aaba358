package firewall

import (
	"strconv"
)

// Action is the kind of a change, printed the same way everywhere: "+" add,
// "-" remove, "~" update in place (a policy, an order).
type Action string

const (
	Add    Action = "add"
	Remove Action = "remove"
	Update Action = "update"
)

// Symbol is the one-character mark of an action.
func (a Action) Symbol() string {
	switch a {
	case Add:
		return "+"
	case Remove:
		return "-"
	}
	return "~"
}

// Change is one difference between a host's live and desired filter table.
type Change struct {
	Action Action `json:"action"`
	Family Family `json:"family"`
	Chain  string `json:"chain"`
	What   string `json:"what"` // in the operator's words
	Raw    string `json:"raw"`  // the iptables-save line(s) concerned
}

var builtins = []string{"INPUT", "FORWARD", "OUTPUT"}

// LiveFilter is the filter table of a live ruleset as a Ruleset of its own,
// in the form Compile produces. A host whose tables were never loaded (a
// fresh Pi prints nothing) has the kernel's defaults: every built-in chain
// ACCEPT and empty.
func LiveFilter(live *Ruleset) *Ruleset {
	if t := live.Table("filter"); t != nil {
		return &Ruleset{Tables: []*Table{t}}
	}
	t := &Table{Name: "filter"}
	for _, name := range builtins {
		t.Chains = append(t.Chains, &Chain{Name: name, Policy: "ACCEPT"})
	}
	return &Ruleset{Tables: []*Table{t}}
}

// Diff lists what must change for the live filter table of one family to
// become the desired one. It is empty exactly when the two have the same
// Text, so that "no changes" means iptables would hold the same rules.
func Diff(fam Family, desired, live *Ruleset) []Change {
	want, have := desired.Table("filter"), LiveFilter(live).Table("filter")
	var changes []Change
	for _, name := range builtins {
		w, h := want.Chain(name), have.Chain(name)
		hp := "ACCEPT"
		if h != nil {
			hp = h.Policy
		}
		if w.Policy != hp {
			changes = append(changes, Change{Action: Update, Family: fam, Chain: name,
				What: "policy " + name + " " + hp + " → " + w.Policy, Raw: ":" + name + " " + w.Policy})
		}
	}
	for _, c := range have.Chains {
		if c.Policy == "-" && want.Chain(c.Name) == nil {
			changes = append(changes, Change{Action: Remove, Family: fam, Chain: c.Name,
				What: "foreign chain " + c.Name + " (" + plural(len(c.Rules), "rule") + ")", Raw: ":" + c.Name + " - [0:0]"})
		}
	}
	for _, c := range want.Chains {
		if c.Policy == "-" && have.Chain(c.Name) == nil {
			changes = append(changes, Change{Action: Add, Family: fam, Chain: c.Name, What: "chain " + c.Name, Raw: ":" + c.Name + " - [0:0]"})
		}
	}
	for _, name := range chainNames(want, have) {
		changes = append(changes, diffRules(fam, name, want.Chain(name), have.Chain(name))...)
	}
	if len(changes) == 0 && desired.Text() != LiveFilter(live).Text() {
		changes = append(changes, Change{Action: Update, Family: fam, Chain: "", What: "order of the chains"})
	}
	return changes
}

// chainNames lists the chains of either table, desired ones first.
func chainNames(want, have *Table) []string {
	var names []string
	seen := map[string]bool{}
	for _, t := range []*Table{want, have} {
		for _, c := range t.Chains {
			if !seen[c.Name] {
				seen[c.Name] = true
				names = append(names, c.Name)
			}
		}
	}
	return names
}

// diffRules compares the rules of one chain as multisets of lines: removed
// rules, then added ones; when both hold the same rules in another order,
// one update says so.
func diffRules(fam Family, chain string, want, have *Chain) []Change {
	var wantRules, haveRules []*Rule
	if want != nil {
		wantRules = want.Rules
	}
	if have != nil {
		haveRules = have.Rules
	}
	count := map[string]int{}
	for _, r := range wantRules {
		count[r.Line(chain)]++
	}
	var changes []Change
	var same []string
	for _, r := range haveRules {
		line := r.Line(chain)
		if count[line] > 0 {
			count[line]--
			same = append(same, line)
			continue
		}
		// A rule of a chain that goes away is counted in its chain's removal.
		if want != nil {
			changes = append(changes, Change{Action: Remove, Family: fam, Chain: chain, What: Describe(chain, r), Raw: line})
		}
	}
	count = map[string]int{}
	for _, r := range haveRules {
		count[r.Line(chain)]++
	}
	var kept []string
	for _, r := range wantRules {
		line := r.Line(chain)
		if count[line] > 0 {
			count[line]--
			kept = append(kept, line)
			continue
		}
		changes = append(changes, Change{Action: Add, Family: fam, Chain: chain, What: Describe(chain, r), Raw: line})
	}
	if len(changes) == 0 {
		for i := range same {
			if same[i] != kept[i] {
				return []Change{{Action: Update, Family: fam, Chain: chain, What: "order of the rules in " + chain}}
			}
		}
	}
	return changes
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
