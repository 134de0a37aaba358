package firewall

import (
	"strings"
)

// Family is an IP version: each has its own tables (iptables, ip6tables).
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Ruleset is one family's tables in the form iptables-save prints them.
// Desired rulesets hold the filter table only (iptables-restore then
// replaces that table and leaves the others alone); live ones hold every
// table the host has.
type Ruleset struct {
	Tables []*Table
}

// Table is one table: its chains, each with its rules.
type Table struct {
	Name   string
	Chains []*Chain
}

// Chain is a built-in chain (with a policy) or a user chain (policy "-").
type Chain struct {
	Name   string
	Policy string // ACCEPT or DROP for built-in chains, "-" for user chains
	Rules  []*Rule
}

// Rule is one rule: its tokens after "-A CHAIN", exactly as iptables-save
// prints them (values it quotes keep their quotes).
type Rule struct {
	Tokens []string
}

// Table returns the named table, or nil.
func (rs *Ruleset) Table(name string) *Table {
	if rs == nil {
		return nil
	}
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name string) *Chain {
	if t == nil {
		return nil
	}
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Text is the ruleset as iptables-save prints it, minus its "# Generated"
// and "# Completed" lines and with every counter zero: the form piwall
// writes, restores and compares. Two rulesets that iptables would hold the
// same way have the same Text, so an unchanged host is recognized as such.
func (rs *Ruleset) Text() string {
	var b strings.Builder
	for _, t := range rs.Tables {
		b.WriteString("*" + t.Name + "\n")
		for _, c := range t.Chains {
			b.WriteString(":" + c.Name + " " + c.Policy + " [0:0]\n")
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				b.WriteString(r.Line(c.Name) + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// Line is the rule as iptables-save prints it in chain.
func (r *Rule) Line(chain string) string {
	if len(r.Tokens) == 0 {
		return "-A " + chain
	}
	return "-A " + chain + " " + strings.Join(r.Tokens, " ")
}

// Args are the rule's arguments with iptables-save's quoting undone.
func (r *Rule) Args() []string {
	args := make([]string, len(r.Tokens))
	for i, t := range r.Tokens {
		args[i] = unquote(t)
	}
	return args
}

// Option returns the value after the first occurrence of flag, e.g.
// Option("-j") is the target.
func (r *Rule) Option(flag string) (string, bool) {
	for i, t := range r.Tokens {
		if t == flag && i+1 < len(r.Tokens) {
			return unquote(r.Tokens[i+1]), true
		}
	}
	return "", false
}

// Target is the chain or verdict the rule jumps or goes to, or "".
func (r *Rule) Target() string {
	if t, ok := r.Option("-j"); ok {
		return t
	}
	t, _ := r.Option("-g")
	return t
}

// saveString quotes a value the way iptables-save prints a comment or a log
// prefix (xtables_save_string): bare when it is only letters, digits, '_'
// and '-'; else in double quotes with '"', '\' and '\” escaped by a
// backslash.
func saveString(v string) string {
	if v != "" && strings.Trim(v, "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(v) {
		if c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// unquote undoes saveString; a token that is not quoted is returned as is.
func unquote(t string) string {
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return t
	}
	var b strings.Builder
	for i := 1; i < len(t)-1; i++ {
		if t[i] == '\\' && i+1 < len(t)-1 {
			i++
		}
		b.WriteByte(t[i])
	}
	return b.String()
}
