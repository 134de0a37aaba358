package firewall

import (
	"strings"
	"testing"
)

// The Diff cases are one txtar file each under testdata/diff/, with the
// sections of a compile case (site.hcl, host, names, resolvers), the host's
// live rules (live.v4, live.v6: real iptables-save output, empty for a
// fresh host) and the changes it needs (want), as formatChanges writes
// them, IPv4 first, or "no changes". go test -update rewrites want.

// formatChanges writes changes one a line, as "SYMBOL FAMILY CHAIN: WHAT",
// each followed by its raw line(s), indented, when it has them.
func formatChanges(changes []Change) string {
	var b strings.Builder
	for _, c := range changes {
		where := c.Family.String()
		if c.Chain != "" {
			where += " " + c.Chain
		}
		b.WriteString(c.Action.Symbol() + " " + where + ": " + c.What + "\n")
		if c.Raw != "" {
			for _, line := range strings.Split(c.Raw, "\n") {
				b.WriteString("    " + line + "\n")
			}
		}
	}
	return b.String()
}

func TestDiffGolden(t *testing.T) {
	cases := loadGolden(t, "diff")
	names := map[string]bool{}
	for _, c := range cases {
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			in, lives := compileInput(t, c)
			d, err := Compile(in)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			foreign, err := NewForeign(in.Policy.KeepChains, in.Policy.Coexist, lives[IPv4], lives[IPv6])
			if err != nil {
				t.Fatal(err)
			}
			var all []Change
			for _, fam := range []Family{IPv4, IPv6} {
				live, err := foreign.Own(lives[fam])
				if err != nil {
					t.Fatalf("%s: Own: %v", fam, err)
				}
				changes := Diff(fam, d.Family(fam), live)
				all = append(all, changes...)
				// Diff is empty exactly when iptables would hold the same
				// rules: when the texts are the same.
				same := d.Family(fam).Text() == LiveFilter(live).Text()
				if same != (len(changes) == 0) {
					t.Errorf("%s: got %d changes, but the desired and live texts are the same: %v", fam, len(changes), same)
				}
				for _, ch := range changes {
					checkChange(t, fam, ch, foreign)
				}
			}
			got := formatChanges(all)
			if len(all) == 0 {
				got = "no changes\n"
			}
			c.checkGolden(t, "want", got)
			if *update {
				c.write(t)
			}
		})
	}
	for _, want := range []string{"fresh-host", "already-applied", "drift-rule-added-by-hand", "docker-chains-kept", "rule-order-changed", "foreign-chain", "names-moved-sets-unchanged"} {
		if !names[want] {
			t.Errorf("no Diff case %q in testdata/diff", want)
		}
	}
}

// checkChange checks what holds for every change: a known action in the
// family diffed, and never a line of someone else's.
func checkChange(t *testing.T, fam Family, ch Change, foreign *Foreign) {
	t.Helper()
	if ch.Family != fam {
		t.Errorf("change %+v: got family %s, want %s", ch, ch.Family, fam)
	}
	if ch.Action != Add && ch.Action != Remove && ch.Action != Update {
		t.Errorf("change %+v: unknown action %q", ch, ch.Action)
	}
	if ch.What == "" {
		t.Errorf("change %+v: no words for it", ch)
	}
	for _, line := range strings.Split(ch.Raw, "\n") {
		if foreign.Has(line) {
			t.Errorf("change %+v touches a line of someone else's: %s", ch, line)
		}
	}
}

func TestActionSymbol(t *testing.T) {
	tests := []struct {
		action Action
		want   string
	}{
		{Add, "+"},
		{Remove, "-"},
		{Update, "~"},
	}
	for _, tt := range tests {
		t.Run(string(tt.action), func(t *testing.T) {
			if got := tt.action.Symbol(); got != tt.want {
				t.Errorf("%s.Symbol(): got %q, want %q", tt.action, got, tt.want)
			}
		})
	}
}

// TestDiffSmallCases covers what the golden cases do not show: a chain's
// rules as multisets (a duplicate counts), and chain order.
func TestDiffSmallCases(t *testing.T) {
	const head = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n"
	const a = `-A INPUT -s 192.0.2.1/32 -m comment --comment "piwall: a inbound 1: 192.0.2.1" -j ACCEPT` + "\n"
	const b = `-A INPUT -s 192.0.2.2/32 -m comment --comment "piwall: a inbound 1: 192.0.2.2" -j ACCEPT` + "\n"
	tests := []struct {
		name          string
		desired, live string
		want          string
	}{
		{"the same", head + a + b + "COMMIT\n", head + a + b + "COMMIT\n", ""},
		{"a rule twice live", head + a + b + "COMMIT\n", head + a + a + b + "COMMIT\n",
			"- IPv4 INPUT: allow in all traffic from 192.0.2.1\n    " + strings.TrimSuffix(a, "\n") + "\n"},
		{"a rule twice desired", head + a + a + "COMMIT\n", head + a + "COMMIT\n",
			"+ IPv4 INPUT: allow in all traffic from 192.0.2.1\n    " + strings.TrimSuffix(a, "\n") + "\n"},
		{"a rule replaced", head + a + "COMMIT\n", head + b + "COMMIT\n",
			"- IPv4 INPUT: allow in all traffic from 192.0.2.2\n    " + strings.TrimSuffix(b, "\n") + "\n" +
				"+ IPv4 INPUT: allow in all traffic from 192.0.2.1\n    " + strings.TrimSuffix(a, "\n") + "\n"},
		{"two rules swapped", head + a + b + "COMMIT\n", head + b + a + "COMMIT\n",
			"~ IPv4 INPUT: order of the rules in INPUT\n"},
		{"a policy", head + "COMMIT\n", strings.Replace(head, "FORWARD DROP", "FORWARD ACCEPT", 1) + "COMMIT\n",
			"~ IPv4 FORWARD: policy FORWARD ACCEPT → DROP\n    :FORWARD DROP\n"},
		{"an empty foreign chain", head + "COMMIT\n", head + ":empty - [0:0]\nCOMMIT\n",
			"- IPv4 empty: foreign chain empty (0 rules)\n    :empty - [0:0]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired, err := Parse(tt.desired)
			if err != nil {
				t.Fatal(err)
			}
			live, err := Parse(tt.live)
			if err != nil {
				t.Fatal(err)
			}
			if got := formatChanges(Diff(IPv4, desired, live)); got != tt.want {
				t.Errorf("Diff:\ngot:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
