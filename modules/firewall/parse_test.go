package firewall

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The parse cases are one txtar file each under testdata/parse/:
//
//	-- setup --  a shell script that builds the host's tables
//	-- save --   the command that printed input
//	-- input --  its real output, comment lines included
//	-- model --  what Parse makes of it, as dumpModel writes it
//
// Run as root, the test runs setup and save in a network namespace of its
// own and checks that input is still what the real tool prints (lines
// starting with '#' aside, which hold the time); with -update it records
// the new output there, and rewrites model.

// dumpModel writes a parsed ruleset one table, chain and rule a line, each
// token quoted, so that the golden file shows where tokens begin and end.
func dumpModel(rs *Ruleset) string {
	var b strings.Builder
	for _, t := range rs.Tables {
		fmt.Fprintf(&b, "table %s\n", t.Name)
		for _, c := range t.Chains {
			fmt.Fprintf(&b, "  chain %s policy %s, %d rules\n", c.Name, c.Policy, len(c.Rules))
			for _, r := range c.Rules {
				fmt.Fprintf(&b, "    rule")
				for _, tok := range r.Tokens {
					fmt.Fprintf(&b, " %q", tok)
				}
				b.WriteString("\n")
				if args := r.Args(); fmt.Sprint(args) != fmt.Sprint(r.Tokens) {
					fmt.Fprintf(&b, "      args")
					for _, a := range args {
						fmt.Fprintf(&b, " %q", a)
					}
					b.WriteString("\n")
				}
			}
		}
	}
	if b.Len() == 0 {
		return "(empty)\n"
	}
	return b.String()
}

var (
	chainCounters = regexp.MustCompile(`(?m)^(:\S+ \S+) \[\d+:\d+\]$`)
	ruleCounters  = regexp.MustCompile(`(?m)^\[\d+:\d+\] `)
)

// canonical is iptables-save output as Text prints it: without its '#'
// lines, with every counter zero.
func canonical(saved string) string {
	s := withoutComments(saved)
	s = chainCounters.ReplaceAllString(s, "$1 [0:0]")
	return ruleCounters.ReplaceAllString(s, "")
}

// cannotRunIptables says why the real tools cannot run here, or "".
func cannotRunIptables(tools ...string) string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range append([]string{"ip", "sh", "stat"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is missing (apt-get install -y iptables)"
		}
	}
	return ""
}

func TestParseGolden(t *testing.T) {
	for _, c := range loadGolden(t, "parse") {
		t.Run(c.name, func(t *testing.T) {
			save := strings.Fields(c.mustSection(t, "save"))
			if len(save) == 0 {
				t.Fatalf("%s: empty -- save -- section", c.path)
			}
			setup := c.mustSection(t, "setup")
			tools := []string{save[0]}
			legacy := strings.Contains(setup, "iptables-legacy")
			if legacy {
				tools = append(tools, "iptables-legacy")
			}
			why := cannotRunIptables(tools...)
			if why == "" && legacy {
				why = legacyBroken(t)
			}
			if why != "" {
				t.Logf("input not checked against the real %s: %s", save[0], why)
			} else {
				ns := newNetns(t, tools...)
				ns.run(t, "", "sh", "-ec", setup)
				printed := ns.run(t, "", save...)
				if *update {
					c.setSection("input", printed)
				} else if got, want := withoutComments(printed), withoutComments(c.mustSection(t, "input")); got != want {
					t.Errorf("%s: the real %s prints something else now (go test -update records it):\ngot:\n%s\nwant:\n%s", c.path, save[0], got, want)
				}
			}
			input := c.mustSection(t, "input")
			rs, err := Parse(input)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c.checkGolden(t, "model", dumpModel(rs))
			if *update {
				c.write(t)
			}
			if got, want := rs.Text(), canonical(input); got != want {
				t.Errorf("Text(Parse(input)) is not input without '#' lines and counters:\ngot:\n%s\nwant:\n%s\ndiff:\n%s", got, want, lineDiff(want, got))
			}
			again, err := Parse(rs.Text())
			if err != nil {
				t.Fatalf("Parse(Text()): %v", err)
			}
			if again.Text() != rs.Text() {
				t.Errorf("Parse(Text()).Text() differs:\ngot:\n%s\nwant:\n%s", again.Text(), rs.Text())
			}
		})
	}
}

// TestParseModel checks a few values of the parsed golden inputs by hand,
// beyond the model dump: quoting undone by Args and Option, targets, the
// order of tables.
func TestParseModel(t *testing.T) {
	read := func(t *testing.T, name string) *Ruleset {
		t.Helper()
		for _, c := range loadGolden(t, "parse") {
			if c.name == name {
				rs, err := Parse(c.mustSection(t, "input"))
				if err != nil {
					t.Fatal(err)
				}
				return rs
			}
		}
		t.Fatalf("no parse case %s", name)
		return nil
	}
	t.Run("comments", func(t *testing.T) {
		rs := read(t, "comments-quoting")
		var got []string
		for _, r := range chainOf(t, rs, "filter", "my-chain").Rules {
			c, _ := r.Option("--comment")
			got = append(got, c)
		}
		want := []string{"has spaces", `say "hi"`, "it's", `back\slash`, `ends in a backslash\`, `all of "them": it's a \ mix`,
			"simple", "a.b", "", "piwall: kiosk outbound 1: api.example.com", "   leading and trailing   "}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("comments:\ngot  %q\nwant %q", got, want)
		}
		logRule := chainOf(t, rs, "filter", "my-chain").Rules[6]
		if p, _ := logRule.Option("--log-prefix"); p != `x "y" \z'` {
			t.Errorf("log prefix: got %q, want %q", p, `x "y" \z'`)
		}
		if target := logRule.Target(); target != "LOG" {
			t.Errorf("target: got %q, want LOG", target)
		}
	})
	t.Run("tables and counters", func(t *testing.T) {
		rs := read(t, "counters-and-tables-v4")
		var names []string
		for _, tb := range rs.Tables {
			names = append(names, tb.Name)
		}
		if len(names) != 4 {
			t.Errorf("tables: got %v, want filter, nat, mangle and raw", names)
		}
		in := chainOf(t, rs, "filter", "INPUT")
		if in.Policy != "DROP" || len(in.Rules) != 3 {
			t.Errorf("filter INPUT: got policy %s and %d rules, want DROP and 3", in.Policy, len(in.Rules))
		}
		if got := in.Rules[0].Line("INPUT"); got != "-A INPUT -i lo -j ACCEPT" {
			t.Errorf("first rule: got %q, want it without its counters", got)
		}
		if pm := rs.Table("nat").Chain("PORTMAP"); pm == nil || pm.Policy != "-" || pm.Rules[0].Target() != "DNAT" {
			t.Errorf("nat PORTMAP: got %+v, want a user chain with a DNAT rule", pm)
		}
	})
	t.Run("negations and gotos", func(t *testing.T) {
		rs := read(t, "foreign-chains-negations-v4")
		first := chainOf(t, rs, "filter", "INPUT").Rules[0]
		if got := fmt.Sprint(first.Tokens[:4]); got != "[-s 10.0.0.0/8 ! -i]" {
			t.Errorf("first INPUT rule: got tokens %s..., want the negation kept", got)
		}
		bl := chainOf(t, rs, "filter", "block-list").Rules
		if got := bl[len(bl)-1].Target(); got != "drop-quietly" {
			t.Errorf("-g drop-quietly: got target %q", got)
		}
	})
	t.Run("a fresh host", func(t *testing.T) {
		rs := read(t, "fresh-host")
		if len(rs.Tables) != 0 || rs.Text() != "" {
			t.Errorf("fresh host: got %d tables, Text %q; want none", len(rs.Tables), rs.Text())
		}
		f := LiveFilter(rs)
		if got := f.Text(); got != "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n" {
			t.Errorf("LiveFilter of a fresh host: got %q, want the kernel's defaults", got)
		}
	})
}

// chainOf returns a chain of a parsed ruleset, failing the test when it is
// missing.
func chainOf(t *testing.T, rs *Ruleset, table, chain string) *Chain {
	t.Helper()
	c := rs.Table(table).Chain(chain)
	if c == nil {
		t.Fatalf("no chain %s in table %s", chain, table)
	}
	return c
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		line  int
		msg   string
	}{
		{"rule before any table", "# Generated by iptables-save\n-A INPUT -j ACCEPT\n*filter\nCOMMIT\n", 2, "rule outside a table"},
		{"chain before any table", ":INPUT ACCEPT [0:0]\n", 1, "chain outside a table"},
		{"missing COMMIT", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n", 4, "table filter has no COMMIT"},
		{"missing COMMIT without a final newline", "*filter\n:INPUT ACCEPT [0:0]", 2, "table filter has no COMMIT"},
		{"missing COMMIT before the next table", "*filter\n:INPUT ACCEPT [0:0]\n*nat\nCOMMIT\n", 3, "table filter has no COMMIT before the next table"},
		{"COMMIT outside a table", "*filter\nCOMMIT\nCOMMIT\n", 3, "COMMIT outside a table"},
		{"unterminated quote", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"no end -j ACCEPT\n", 3, "unterminated quote"},
		{"quote escaped at the end", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"a\\\"\nCOMMIT\n", 3, "unterminated quote"},
		{"text after a closing quote", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"a\"b -j ACCEPT\nCOMMIT\n", 3, "text right after a closing quote"},
		{"rule for an undeclared chain", "*filter\n:INPUT ACCEPT [0:0]\n-A OUTPUT -j ACCEPT\nCOMMIT\n", 3, "rule for undeclared chain OUTPUT"},
		{"unknown policy", "*filter\n:INPUT REJECT [0:0]\nCOMMIT\n", 2, "unknown policy REJECT"},
		{"chain declared twice", "*filter\n:INPUT ACCEPT [0:0]\n:INPUT DROP [0:0]\nCOMMIT\n", 3, "chain INPUT declared twice"},
		{"table twice", "*filter\nCOMMIT\n*filter\nCOMMIT\n", 3, "table filter appears twice"},
		{"malformed chain line", "*filter\n:INPUT\nCOMMIT\n", 2, "malformed chain line"},
		{"malformed counters", "*filter\n:INPUT ACCEPT [0:x]\nCOMMIT\n", 2, "malformed chain line"},
		{"bad table name", "*\nCOMMIT\n", 1, "bad table name"},
		{"not a rule", "*filter\n:INPUT ACCEPT [0:0]\n-I INPUT -j ACCEPT\nCOMMIT\n", 3, "not a rule (-A CHAIN ...)"},
		{"counters alone", "*filter\n:INPUT ACCEPT [0:0]\n[1:2]\nCOMMIT\n", 3, "not a rule (-A CHAIN ...)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse(tt.input)
			if err == nil {
				t.Fatalf("Parse: got no error and\n%s\nwant an error at line %d", rs.Text(), tt.line)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse: got %T %v, want a *ParseError", err, err)
			}
			if pe.Line != tt.line || pe.Msg != tt.msg {
				t.Errorf("Parse: got line %d %q, want line %d %q", pe.Line, pe.Msg, tt.line, tt.msg)
			}
			if want := fmt.Sprintf("line %d: %s", tt.line, tt.msg); !strings.Contains(err.Error(), want) {
				t.Errorf("Parse: got error %q, want it to say %q", err, want)
			}
		})
	}
}

// TestParseAccepts lists inputs that are odd but valid: Parse reads them.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // Text
	}{
		{"empty", "", ""},
		{"only comments", "# Generated by iptables-save v1.8.9\n# Completed\n", ""},
		{"CRLF line ends", "*filter\r\n:INPUT ACCEPT [0:0]\r\n-A INPUT -j ACCEPT\r\nCOMMIT\r\n", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"},
		{"no final newline", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"},
		{"a chain line without counters", "*filter\n:INPUT DROP\nCOMMIT\n", "*filter\n:INPUT DROP [0:0]\nCOMMIT\n"},
		{"an empty table", "*raw\nCOMMIT\n", "*raw\nCOMMIT\n"},
		{"the warning of iptables-nft", "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"},
		{"blank lines", "\n*filter\n\n:INPUT ACCEPT [0:0]\n\nCOMMIT\n\n", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse(tt.input)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := rs.Text(); got != tt.want {
				t.Errorf("Text: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"empty", "", "[]"},
		{"one", "nameserver 192.168.1.1\n", "[192.168.1.1]"},
		{"in order, each once", "nameserver 192.168.1.2\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n", "[192.168.1.2 192.168.1.1]"},
		{"both families", "nameserver fd00::1\nnameserver 192.168.1.1\n", "[fd00::1 192.168.1.1]"},
		{"comments, search and options", "# by NetworkManager\n; old\nsearch lan\noptions edns0 trust-ad\nnameserver 10.0.0.1 # the router\n", "[10.0.0.1]"},
		{"commented out", "#nameserver 10.0.0.9\n# nameserver 10.0.0.8\n", "[]"},
		{"tabs and blanks", "nameserver\t10.0.0.1\n   nameserver   10.0.0.2   \n", "[10.0.0.1 10.0.0.2]"},
		{"malformed addresses skipped", "nameserver 10.0.0.256\nnameserver router.lan\nnameserver\nnameserver 10.0.0.3\n", "[10.0.0.3]"},
		{"v4-mapped is IPv4", "nameserver ::ffff:10.0.0.4\nnameserver 10.0.0.4\n", "[10.0.0.4]"},
		{"a zone is skipped", "nameserver fe80::1%eth0\n", "[]"},
		{"systemd-resolved stub", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", "[127.0.0.53]"},
		{"CRLF", "nameserver 10.0.0.5\r\n", "[10.0.0.5]"},
		{"not the keyword", "nameservers 10.0.0.6\nNAMESERVER 10.0.0.7\n", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(ParseResolvConf(tt.text)); got != tt.want {
				t.Errorf("ParseResolvConf(%q): got %s, want %s", tt.text, got, tt.want)
			}
		})
	}
}
