package firewall

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz the parsers of what comes from a host: iptables-save output and
// /etc/resolv.conf. The readable seeds are under testdata/fuzz/<name>/
// (real outputs among them); the golden files add theirs. Run each for a
// while after changing a parser:
//
//	go test ./modules/firewall -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s
//	go test ./modules/firewall -run '^$' -fuzz '^FuzzParseResolvConf$' -fuzztime 60s

// requireSeeds fails when the seed directory of a fuzz test is missing or
// empty: a fuzz test without seeds would pass testing nothing.
func requireSeeds(f *testing.F, name string) {
	f.Helper()
	dir := filepath.Join("testdata", "fuzz", name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("seeds of %s: %v", name, err)
	}
	if len(entries) == 0 {
		f.Fatalf("seeds of %s: %s is empty", name, dir)
	}
}

func FuzzParse(f *testing.F) {
	requireSeeds(f, "FuzzParse")
	for _, dir := range []string{"parse", "compile", "diff"} {
		for _, c := range loadGolden(f, dir) {
			for _, file := range c.archive.Files {
				if file.Name == "input" || strings.HasPrefix(file.Name, "live.") || strings.HasPrefix(file.Name, "want.v") {
					f.Add(string(file.Data))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		rs, err := Parse(text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse: got %T %v, want a *ParseError", err, err)
			}
			if lines := strings.Count(text, "\n") + 1; pe.Line < 1 || pe.Line > lines {
				t.Errorf("Parse: error at line %d of %d: %v", pe.Line, lines, err)
			}
			return
		}
		out := rs.Text()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Parse(x).Text()): %v\nx: %q\nText: %q", err, text, out)
		}
		if got := again.Text(); got != out {
			t.Fatalf("Parse(Text()).Text() differs:\nx:    %q\nText: %q\nthen: %q", text, out, got)
		}
		for _, tb := range rs.Tables {
			for _, c := range tb.Chains {
				for _, r := range c.Rules {
					if Describe(c.Name, r) == "" {
						t.Errorf("Describe(%s): empty", r.Line(c.Name))
					}
				}
			}
		}
		// A filter table with its built-in chains differs from itself in
		// nothing.
		if ft := rs.Table("filter"); ft != nil && ft.Chain("INPUT") != nil && ft.Chain("FORWARD") != nil && ft.Chain("OUTPUT") != nil {
			if changes := Diff(IPv4, LiveFilter(rs), rs); len(changes) != 0 {
				t.Errorf("Diff of a ruleset with itself: got\n%s\nwant no changes", formatChanges(changes))
			}
		}
	})
}

func FuzzParseResolvConf(f *testing.F) {
	requireSeeds(f, "FuzzParseResolvConf")
	for _, c := range loadGolden(f, "compile") {
		for _, file := range c.archive.Files {
			if file.Name == "resolvers" {
				f.Add(string(file.Data))
			}
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		addrs := ParseResolvConf(text)
		seen := map[netip.Addr]bool{}
		for _, a := range addrs {
			if seen[a] {
				t.Errorf("ParseResolvConf(%q): %s twice in %v", text, a, addrs)
			}
			seen[a] = true
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
				t.Errorf("ParseResolvConf(%q): got %s, want a plain IPv4 or IPv6 address", text, a)
			}
			if !inText(text, a) {
				t.Errorf("ParseResolvConf(%q): got %s, which the text does not hold", text, a)
			}
		}
	})
}

// inText reports whether some blank-separated word of text is the address
// a, written in any of the ways ParseAddr reads.
func inText(text string, a netip.Addr) bool {
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r > 0x7f || r < ' ' }) {
		if b, err := netip.ParseAddr(w); err == nil && b.Unmap() == a {
			return true
		}
	}
	return false
}
