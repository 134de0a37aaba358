package firewall

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/piwall/piwall/plans"
)

// The layouts under testdata/foreign are what Docker (20.10, Debian
// bookworm's docker.io, and 28), fail2ban, Tailscale and firewalld put
// into a host's tables, beside piwall's rules and rules nobody declared:
// NAME.save is iptables-save's output, NAME.own piwall's part of it.
// modules' TestOwnOfIsOwnText holds the scripts' own_of to the same files.
var foreignCases = []struct {
	name    string
	keep    []string
	coexist []string
}{
	{"docker20", nil, []string{"docker"}},
	{"docker28-fail2ban-tailscale", nil, []string{"docker", "fail2ban", "tailscale"}},
	// A goto and jumps from a kept chain keep the chains they reach.
	{"firewalld", []string{"INPUT_ZONES"}, nil},
}

func readSave(t *testing.T, name string) (save, own string) {
	t.Helper()
	s, err := os.ReadFile(filepath.Join("testdata", "foreign", name+".save"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.ReadFile(filepath.Join("testdata", "foreign", name+".own"))
	if err != nil {
		t.Fatal(err)
	}
	// The canonical text, as iptables-save prints it once modules'
	// NormalizeSave has taken its comments and counters.
	rs, err := Parse(string(s))
	if err != nil {
		t.Fatal(err)
	}
	return rs.Text(), string(o)
}

func TestOwnText(t *testing.T) {
	for _, tc := range foreignCases {
		t.Run(tc.name, func(t *testing.T) {
			save, want := readSave(t, tc.name)
			live, err := Parse(save)
			if err != nil {
				t.Fatal(err)
			}
			f, err := NewForeign(tc.keep, tc.coexist, live)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.OwnText(save); got != want {
				t.Errorf("OwnText:\n%s\nwant:\n%s\ndeclaration:\n%s", got, want, f.Text())
			}
			again, err := ParseForeign(f.Text())
			if err != nil || again.Text() != f.Text() {
				t.Errorf("ParseForeign(Text()) = %v, %v", again, err)
			}
		})
	}
}

func TestForeignOwners(t *testing.T) {
	if !slices.Equal(Owners(), plans.Owners) {
		t.Errorf("firewall knows owners %q, plans %q: each owner plans accepts needs its rules here", Owners(), plans.Owners)
	}
	if _, err := NewForeign(nil, []string{"firewalld"}); err == nil || !strings.Contains(err.Error(), "docker, fail2ban, tailscale") {
		t.Errorf("unknown owner: %v", err)
	}
	f, err := NewForeign([]string{"DOCKER*", "*", "IN*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]bool{
		":DOCKER - [0:0]":                      true,
		"-A DOCKER -j RETURN":                  true,
		"-A FORWARD -j DOCKER-USER":            true,
		"-A FORWARD -o docker0 -g DOCKER":      true,
		":docker - [0:0]":                      false, // chain names are case-sensitive
		"-A FORWARD -i docker0 -j ACCEPT":      false, // docker's own rule: coexist, not keep_chains
		":INPUT ACCEPT [0:0]":                  false, // a glob never takes a built-in chain
		"-A INPUT -j ACCEPT":                   false,
		"-A INPUT -m comment --comment DOCKER": false,
		"-A INPUT -j DOCKERS":                  true,
		"-A INPUT -j DOCKER2 -m x":             true,
	} {
		if got := f.Has(line); got != want {
			t.Errorf("Has(%q) = %v, want %v", line, got, want)
		}
	}
}

// TestMerge: what the kernel holds after piwall's part is loaded over a
// live table: others' rules of the built-in chains first, then piwall's;
// others' chains as they were; what nobody declared gone.
func TestMerge(t *testing.T) {
	save, _ := readSave(t, "docker28-fail2ban-tailscale")
	live, err := Parse(save)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewForeign(nil, []string{"docker", "fail2ban", "tailscale"}, live)
	if err != nil {
		t.Fatal(err)
	}
	own, err := Parse("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	merged := f.Merge(own, live)
	m := merged.Table("filter")
	var in []string
	for _, r := range m.Chain("INPUT").Rules {
		in = append(in, r.Line("INPUT"))
	}
	wantIn := []string{
		"-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd",
		"-A INPUT -j ts-input",
		"-A INPUT -i tailscale0 -p udp -m udp --dport 41641 -j ACCEPT",
		"-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 22 -j ACCEPT",
	}
	if !slices.Equal(in, wantIn) {
		t.Errorf("INPUT:\n%s\nwant:\n%s", strings.Join(in, "\n"), strings.Join(wantIn, "\n"))
	}
	if p := m.Chain("OUTPUT").Policy; p != "ACCEPT" {
		t.Errorf("OUTPUT policy %s, want piwall's ACCEPT", p)
	}
	for _, c := range []string{"f2b-sshd", "ts-input", "DOCKER-FORWARD"} {
		if m.Chain(c) == nil || len(m.Chain(c).Rules) != len(live.Table("filter").Chain(c).Rules) {
			t.Errorf("chain %s: %+v, want it as live has it", c, m.Chain(c))
		}
	}
	if got := f.OwnText(merged.Text()); got != own.Text() {
		t.Errorf("piwall's part of the merged table:\n%s\nwant:\n%s", got, own.Text())
	}
}

func TestOwnTextWithoutFilter(t *testing.T) {
	var f *Foreign
	if got := f.OwnText(""); got != defaultFilter {
		t.Errorf("a host with no tables: %q, want the kernel's defaults", got)
	}
	if got := f.OwnText("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"); got != defaultFilter {
		t.Errorf("a host with a nat table only: %q", got)
	}
}

func TestParseForeign(t *testing.T) {
	for _, bad := range []string{"DOCKER\n", "^(\n", "^a\n\n^b\n", `^a\d` + "\n", "^a{2}\n", "^(.)\n", "^COMMIT\n", "^:INPUT \n"} {
		if _, err := ParseForeign(bad); err == nil {
			t.Errorf("ParseForeign(%q) accepted it", bad)
		}
	}
	if f, err := ParseForeign(""); err != nil || f.Text() != "" || f.Has("-A INPUT -j f2b-sshd") {
		t.Errorf("ParseForeign(\"\") = %v, %v; want nothing foreign", f, err)
	}
}

// FuzzParseForeign: a declaration read from a host either is refused or
// reads back as itself, and splits any table without panicking.
func FuzzParseForeign(f *testing.F) {
	for _, tc := range foreignCases {
		fr, err := NewForeign(tc.keep, tc.coexist)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr.Text(), "*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -j f2b-sshd\nCOMMIT\n")
	}
	f.Add("^-A x\n", "")
	f.Fuzz(func(t *testing.T, decl, save string) {
		fr, err := ParseForeign(decl)
		if err != nil {
			return
		}
		again, err := ParseForeign(fr.Text())
		if err != nil || again.Text() != fr.Text() {
			t.Fatalf("ParseForeign(Text()) of %q: %v", fr.Text(), err)
		}
		own := fr.OwnText(save)
		if !strings.HasPrefix(own, "*filter\n") {
			t.Fatalf("OwnText = %q, want a filter table", own)
		}
	})
}
