package firewall

import (
	"os/exec"
	"testing"
)

// backend is one implementation of the iptables tools: a Pi may run either.
type backend struct {
	name                             string
	restore4, restore6, save4, save6 string
}

var backends = []backend{
	{"nft", "iptables-nft-restore", "ip6tables-nft-restore", "iptables-nft-save", "ip6tables-nft-save"},
	{"legacy", "iptables-legacy-restore", "ip6tables-legacy-restore", "iptables-legacy-save", "ip6tables-legacy-save"},
}

// available returns the backends installed here: both variants where they
// are, else the plain tools (an older iptables has no variants).
func available() []backend {
	var out []backend
	for _, b := range backends {
		if _, err := exec.LookPath(b.restore4); err == nil {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		out = append(out, backend{"iptables", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"})
	}
	return out
}

// TestRoundTrip holds the compiler to the canonical form against the real
// iptables: every golden case's want.v4 and want.v6, restored in a network
// namespace of the test's own and saved back (after ipset restore of its
// sets), comes out byte for byte as it went in; it parses back to the same Text; and the desired ruleset
// differs in nothing from what is now live.
func TestRoundTrip(t *testing.T) {
	cases := loadGolden(t, "compile")
	if why := cannotRunIptables("iptables-restore", "ip6tables-restore"); why != "" {
		t.Skipf("skipped: restoring the golden rulesets in a network namespace of the test's own needs root and iptables: %s (sudo go test ./modules/firewall)", why)
	}
	for _, b := range available() {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "legacy" {
				if why := legacyBroken(t); why != "" {
					t.Skipf("skipped: the legacy backend does not work here: %s", why)
				}
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					d := compileCase(t, c)
					ns := newNetns(t, b.restore4, b.restore6, b.save4, b.save6)
					if len(d.Sets) > 0 {
						// The sets first, as the host loads them: a rule
						// that matches a missing set does not load.
						ns.run(t, d.SetsText(), "ipset", "restore")
					}
					for _, f := range []struct {
						fam           Family
						want          string
						restore, save string
					}{
						{IPv4, "want.v4", b.restore4, b.save4},
						{IPv6, "want.v6", b.restore6, b.save6},
					} {
						want := c.mustSection(t, f.want)
						ns.run(t, want, f.restore)
						saved := ns.run(t, "", f.save, "-t", "filter")
						if got := withoutComments(saved); got != want {
							t.Errorf("%s: %s restored and saved: got\n%s\nwant\n%s\ndiff:\n%s", f.fam, f.want, got, want, lineDiff(want, got))
						}
						parsed, err := Parse(saved)
						if err != nil {
							t.Fatalf("%s: Parse(%s -t filter): %v", f.fam, f.save, err)
						}
						if got := parsed.Text(); got != want {
							t.Errorf("%s: Parse(%s -t filter).Text(): got\n%s\nwant\n%s", f.fam, f.save, got, want)
						}
						// The whole live ruleset, as piwall reads it.
						live, err := Parse(ns.run(t, "", f.save))
						if err != nil {
							t.Fatalf("%s: Parse(%s): %v", f.fam, f.save, err)
						}
						if changes := Diff(f.fam, d.Family(f.fam), live); len(changes) != 0 {
							t.Errorf("%s: Diff(desired, live): got %d changes, want none (\"no changes\"):\n%s", f.fam, len(changes), formatChanges(changes))
						}
					}
				})
			}
		})
	}
}

// legacyBroken says why the legacy iptables backend cannot run here (a
// kernel without x_tables, where iptables-legacy asks to insmod), or "".
func legacyBroken(t *testing.T) string {
	t.Helper()
	ns := newNetns(t, "iptables-legacy-restore")
	const open = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	if _, err := ns.try(open, "iptables-legacy-restore"); err != nil {
		return err.Error()
	}
	return ""
}
