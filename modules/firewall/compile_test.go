package firewall

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/piwall/piwall/plans"
)

// The golden compile cases are one txtar file each under testdata/compile/:
//
//	-- site.hcl --    the plan
//	-- host --        the label of the host to compile
//	-- names --       how every DNS name resolves: name addr[,addr...] [cname->cname...]
//	-- resolvers --   the host's /etc/resolv.conf, for dns = "system"
//	-- live.v4 --     optional: the host's iptables-save output (diff cases)
//	-- live.v6 --     optional: the same for ip6tables-save
//	-- want.v4 --     the expected IPv4 Ruleset.Text()
//	-- want.v6 --     the expected IPv6 Ruleset.Text()
//	-- want.names --  the expected Desired.Names, in the format of names
//
// go test ./modules/firewall -run TestCompileGolden -update rewrites the
// want sections; read the diff against DESIGN.md before committing it.
//
// The whole suite is go test ./modules/firewall. Run as root, it also
// restores every golden ruleset with the real iptables in network
// namespaces of its own (roundtrip_test.go, netns_test.go) and checks the
// recorded iptables-save outputs against the real tools (parse_test.go);
// without root those parts skip and say so.

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the code produces")

// goldenCase is one txtar file of testdata.
type goldenCase struct {
	name    string // the file name without .txtar
	path    string
	archive *txtar.Archive
}

// loadGolden reads every txtar file of a testdata directory. Finding none
// fails the test: a loader pointed at the wrong place must not pass by
// testing nothing.
func loadGolden(t testing.TB, dir string) []*goldenCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden cases in testdata/%s/*.txtar", dir)
	}
	var cases []*goldenCase
	for _, p := range paths {
		ar, err := txtar.ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, &goldenCase{name: strings.TrimSuffix(filepath.Base(p), ".txtar"), path: p, archive: ar})
	}
	return cases
}

// section returns the named section of the case.
func (c *goldenCase) section(name string) (string, bool) {
	for _, f := range c.archive.Files {
		if f.Name == name {
			return string(f.Data), true
		}
	}
	return "", false
}

// mustSection returns the named section, failing the test when it is missing.
func (c *goldenCase) mustSection(t *testing.T, name string) string {
	t.Helper()
	s, ok := c.section(name)
	if !ok {
		t.Fatalf("%s: no -- %s -- section", c.path, name)
	}
	return s
}

// setSection replaces the named section, or adds it at the end.
func (c *goldenCase) setSection(name, data string) {
	for i := range c.archive.Files {
		if c.archive.Files[i].Name == name {
			c.archive.Files[i].Data = []byte(data)
			return
		}
	}
	c.archive.Files = append(c.archive.Files, txtar.File{Name: name, Data: []byte(data)})
}

func (c *goldenCase) write(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(c.path, txtar.Format(c.archive), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkGolden compares got with the named section, or rewrites the section
// under -update. It reports whether they matched.
func (c *goldenCase) checkGolden(t *testing.T, name, got string) bool {
	t.Helper()
	if *update {
		c.setSection(name, got)
		return true
	}
	want := c.mustSection(t, name)
	if got != want {
		t.Errorf("%s: %s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s\ndiff:\n%s", c.path, name, got, want, lineDiff(want, got))
		return false
	}
	return true
}

// lineDiff lists the lines of want that got lacks (-), then those of got
// that want lacks (+), counting repeated lines.
func lineDiff(want, got string) string {
	var b strings.Builder
	only := func(mark, a, b2 string) {
		count := map[string]int{}
		for _, l := range strings.Split(b2, "\n") {
			count[l]++
		}
		for _, l := range strings.Split(a, "\n") {
			if count[l] > 0 {
				count[l]--
				continue
			}
			b.WriteString(mark + " " + l + "\n")
		}
	}
	only("-", want, got)
	only("+", got, want)
	if b.Len() == 0 {
		return "(the same lines in another order)\n"
	}
	return b.String()
}

// loadPlan writes src to a plan file and decodes it.
func loadPlan(t *testing.T, src string) *plans.Plan {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := plans.Load(path, plans.Options{})
	if diags.HasErrors() {
		t.Fatalf("plan: %s", diags.Error())
	}
	return p
}

// parseNames reads lines "name addr[,addr...] [cname->cname...]".
func parseNames(t *testing.T, text string) map[string]Resolution {
	t.Helper()
	names := map[string]Resolution{}
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) > 3 {
			t.Fatalf("names, line %d: %q: want name addr[,addr...] [cname->cname...]", i+1, line)
		}
		r := Resolution{Name: f[0]}
		if len(f) > 1 && f[1] != "-" {
			for _, s := range strings.Split(f[1], ",") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					t.Fatalf("names, line %d: %v", i+1, err)
				}
				r.Addrs = append(r.Addrs, a)
			}
		}
		if len(f) == 3 {
			r.CNAMEs = strings.Split(f[2], "->")
		}
		names[r.Name] = r
	}
	return names
}

// formatNames writes resolutions in the format parseNames reads.
func formatNames(rs []Resolution) string {
	var b strings.Builder
	for _, r := range rs {
		var addrs []string
		for _, a := range r.Addrs {
			addrs = append(addrs, a.String())
		}
		line := r.Name + " " + strings.Join(addrs, ",")
		if len(addrs) == 0 {
			line = r.Name + " -"
		}
		if len(r.CNAMEs) > 0 {
			line += " " + strings.Join(r.CNAMEs, "->")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// compileInput builds the Input of a golden case, and reads the host's
// live rules it may have.
func compileInput(t *testing.T, c *goldenCase) (Input, map[Family]*Ruleset) {
	t.Helper()
	p := loadPlan(t, c.mustSection(t, "site.hcl"))
	label := strings.TrimSpace(c.mustSection(t, "host"))
	h := p.Host(label)
	if h == nil {
		t.Fatalf("%s: the plan has no host %q", c.path, label)
	}
	in := Input{
		Policy:    h.Policy,
		Names:     parseNames(t, c.mustSection(t, "names")),
		Resolvers: ParseResolvConf(c.mustSection(t, "resolvers")),
	}
	// services, when there, lists the host's services to keep, as facts
	// would decide them: dhcp dhcpv6 mld mdns.
	if text, ok := c.section("services"); ok {
		for _, name := range strings.Fields(text) {
			switch name {
			case "dhcp":
				in.Services.DHCP = true
			case "dhcpv6":
				in.Services.DHCPv6 = true
			case "mld":
				in.Services.MLD = true
			case "mdns":
				in.Services.MDNS = true
			default:
				t.Fatalf("%s: services: no service %q", c.path, name)
			}
		}
	}
	live := map[Family]*Ruleset{}
	for fam, name := range map[Family]string{IPv4: "live.v4", IPv6: "live.v6"} {
		if text, ok := c.section(name); ok {
			rs, err := Parse(text)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.path, name, err)
			}
			live[fam] = rs
		}
	}
	return in, live
}

// compileCase compiles a golden case, failing the test on an error.
func compileCase(t *testing.T, c *goldenCase) *Desired {
	t.Helper()
	in, _ := compileInput(t, c)
	d, err := Compile(in)
	if err != nil {
		t.Fatalf("%s: Compile: %v", c.path, err)
	}
	return d
}

func TestCompileGolden(t *testing.T) {
	cases := loadGolden(t, "compile")
	if len(cases) < 12 {
		t.Errorf("got %d compile cases, want at least 12", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			input, _ := compileInput(t, c)
			d, err := Compile(input)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			c.checkGolden(t, "want.v4", d.V4.Text())
			c.checkGolden(t, "want.v6", d.V6.Text())
			c.checkGolden(t, "want.names", formatNames(d.Names))
			c.checkGolden(t, "want.sets", d.SetsText())
			if *update {
				c.write(t)
			}
			// The compiled text is what iptables-save prints, so it reads
			// back as itself (the round-trip test checks that against the
			// real iptables).
			for _, rs := range []*Ruleset{d.V4, d.V6} {
				back, err := Parse(rs.Text())
				if err != nil {
					t.Fatalf("Parse(Compile(...).Text()): %v", err)
				}
				if back.Text() != rs.Text() {
					t.Errorf("Parse(Text()).Text() differs:\ngot:\n%s\nwant:\n%s", back.Text(), rs.Text())
				}
			}
			// What holds for every case: the filter table only, policies
			// DROP, every rule of a built-in chain piwall's own, and
			// comments within iptables' 255 bytes.
			for _, rs := range []*Ruleset{d.V4, d.V6} {
				if len(rs.Tables) != 1 || rs.Tables[0].Name != "filter" {
					t.Fatalf("got tables %v, want the filter table only", rs.Tables)
				}
				for _, ch := range rs.Tables[0].Chains {
					isBuiltin := ch.Name == "INPUT" || ch.Name == "OUTPUT" || ch.Name == "FORWARD"
					if isBuiltin && ch.Policy != "DROP" {
						t.Errorf("policy of %s: got %s, want DROP", ch.Name, ch.Policy)
					}
					for _, r := range ch.Rules {
						desc := Describe(ch.Name, r)
						if isBuiltin && strings.HasPrefix(desc, "foreign rule") {
							t.Errorf("Describe(%s) = %q: a compiled rule reads as foreign", r.Line(ch.Name), desc)
						}
						if c, ok := r.Option("--comment"); ok && len(c) > 255 {
							t.Errorf("%s: a comment of %d bytes, want at most 255", r.Line(ch.Name), len(c))
						}
					}
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	const plan = `
allowlist "kiosk" {
  outbound {
    to    = ["api.example.com", "cdn.example.net"]
    ports = ["tcp/443"]
  }
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
}
host "pi" {
  allowlists = ["kiosk"]
}
`
	pol := loadPlan(t, plan).Host("pi").Policy
	a := netip.MustParseAddr
	resolved := map[string]Resolution{
		"api.example.com": {Name: "api.example.com", Addrs: []netip.Addr{a("93.184.216.34")}},
		"cdn.example.net": {Name: "cdn.example.net", Addrs: []netip.Addr{a("203.0.113.80")}},
	}
	resolvers := []netip.Addr{a("192.168.1.1")}
	tests := []struct {
		name      string
		names     map[string]Resolution
		resolvers []netip.Addr
		want      []string // parts of the error
	}{
		{"a name not resolved", map[string]Resolution{"api.example.com": resolved["api.example.com"]}, resolvers,
			[]string{"cdn.example.net: not resolved"}},
		{"a name without addresses", map[string]Resolution{"api.example.com": resolved["api.example.com"],
			"cdn.example.net": {Name: "cdn.example.net", CNAMEs: []string{"edge.example.net"}}}, resolvers,
			[]string{"cdn.example.net: the name has no addresses"}},
		{"dns system without resolvers", resolved, nil,
			[]string{`dns = "system"`, "resolvers are unknown", `dns = ["..."]`, `dns = "none"`}},
		{"every problem at once", nil, nil,
			[]string{"api.example.com: not resolved", "cdn.example.net: not resolved", `dns = "system"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Compile(Input{Policy: pol, Names: tt.names, Resolvers: tt.resolvers})
			if err == nil {
				t.Fatalf("Compile: got a ruleset and no error, want an error:\n%s", d.V4.Text())
			}
			if d != nil {
				t.Errorf("Compile: got a ruleset along with the error %v, want nil", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Compile: got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
	t.Run("all resolved", func(t *testing.T) {
		if _, err := Compile(Input{Policy: pol, Names: resolved, Resolvers: resolvers}); err != nil {
			t.Errorf("Compile: got %v, want no error", err)
		}
	})
}

// TestNames checks the list of names a policy needs resolved: each once, in
// the order written, across entries and directions.
func TestNames(t *testing.T) {
	pol := loadPlan(t, `
allowlist "a" {
  inbound {
    from  = ["admin.example.com", "192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to = ["api.example.com", "Admin.Example.com."]
  }
}
allowlist "b" {
  outbound {
    to = ["ntp.example.org", "api.example.com"]
  }
}
host "pi" {
  allowlists = ["a", "b"]
}
`).Host("pi").Policy
	got := fmt.Sprint(Names(pol))
	want := "[admin.example.com api.example.com ntp.example.org]"
	if got != want {
		t.Errorf("Names: got %s, want %s", got, want)
	}
}
