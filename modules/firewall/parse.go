package firewall

import (
	"fmt"
	"strings"
)

// ParseError is a line of iptables-save output that could not be read.
type ParseError struct {
	Line int // 1-based
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("iptables-save output, line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// Parse reads the output of iptables-save or ip6tables-save (with or
// without -c): every table, chain and rule, foreign ones included. Comment
// lines and counters are dropped. Empty input (a host whose tables were
// never loaded) is an empty Ruleset.
func Parse(text string) (*Ruleset, error) {
	rs := &Ruleset{}
	var table *Table
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimRight(line, " \t\r")
		fail := func(msg string) (*Ruleset, error) {
			return nil, &ParseError{Line: n, Text: line, Msg: msg}
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if table != nil {
				return fail("table " + table.Name + " has no COMMIT before the next table")
			}
			name := line[1:]
			if !validName(name) {
				return fail("bad table name")
			}
			if rs.Table(name) != nil {
				return fail("table " + name + " appears twice")
			}
			table = &Table{Name: name}
		case line == "COMMIT":
			if table == nil {
				return fail("COMMIT outside a table")
			}
			rs.Tables = append(rs.Tables, table)
			table = nil
		case strings.HasPrefix(line, ":"):
			if table == nil {
				return fail("chain outside a table")
			}
			f := strings.Fields(line[1:])
			if len(f) < 2 || len(f) > 3 || !validName(f[0]) || (len(f) == 3 && !isCounters(f[2])) {
				return fail("malformed chain line")
			}
			if table.Chain(f[0]) != nil {
				return fail("chain " + f[0] + " declared twice")
			}
			if f[1] != "-" && f[1] != "ACCEPT" && f[1] != "DROP" {
				return fail("unknown policy " + f[1])
			}
			table.Chains = append(table.Chains, &Chain{Name: f[0], Policy: f[1]})
		default:
			if table == nil {
				return fail("rule outside a table")
			}
			tokens, err := tokenize(line)
			if err != nil {
				return fail(err.Error())
			}
			if len(tokens) > 0 && isCounters(tokens[0]) {
				tokens = tokens[1:]
			}
			if len(tokens) < 2 || tokens[0] != "-A" {
				return fail("not a rule (-A CHAIN ...)")
			}
			c := table.Chain(tokens[1])
			if c == nil {
				return fail("rule for undeclared chain " + tokens[1])
			}
			c.Rules = append(c.Rules, &Rule{Tokens: tokens[2:]})
		}
	}
	if table != nil {
		return nil, &ParseError{Line: strings.Count(text, "\n") + 1, Msg: "table " + table.Name + " has no COMMIT"}
	}
	return rs, nil
}

// tokenize splits a rule line on blanks; a token that starts with a double
// quote runs to the matching unescaped quote, blanks included.
func tokenize(line string) ([]string, error) {
	var tokens []string
	for i := 0; i < len(line); {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		start := i
		if line[i] == '"' {
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
				}
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated quote")
			}
			i++
			if i < len(line) && line[i] != ' ' && line[i] != '\t' {
				return nil, fmt.Errorf("text right after a closing quote")
			}
		} else {
			for i < len(line) && line[i] != ' ' && line[i] != '\t' {
				i++
			}
		}
		tokens = append(tokens, line[start:i])
	}
	return tokens, nil
}

// isCounters matches "[packets:bytes]".
func isCounters(s string) bool {
	if len(s) < 5 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	p, b, ok := strings.Cut(s[1:len(s)-1], ":")
	return ok && isDigits(p) && isDigits(b)
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// validName is a table or chain name: printable, no blanks or quotes.
func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\'' {
			return false
		}
	}
	return true
}
