package plans

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// parseAnsibleINI reads an inventory in Ansible's INI format: [group]
// sections of host lines (NAME[:PORT] [key=value ...], NAME may hold
// ranges like pi-[01:20] or [a:f]), [group:vars] sections of key=value
// lines, [group:children] sections of group names; host lines before any
// section are ungrouped; # and ; start comments. Every problem is
// reported at its line.
func parseAnsibleINI(file string, src []byte) (*ansibleInventory, hcl.Diagnostics) {
	inv := newAnsibleInventory(file)
	sl := newSrcLines(file, src)
	var diags hcl.Diagnostics
	bad := func(from, to int, summary, detail string) {
		r := sl.rng(from, to)
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &r})
	}
	group, kind := inv.groups["ungrouped"], "hosts"
	for i, start := range sl.starts {
		end := len(src)
		if i+1 < len(sl.starts) {
			end = sl.starts[i+1] - 1
		}
		line := strings.TrimRight(string(src[start:end]), "\r")
		trimmed := strings.TrimSpace(line)
		indent := start + len(line) - len(strings.TrimLeft(line, " \t"))
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		if trimmed[0] == '[' {
			closing := strings.IndexByte(trimmed, ']')
			if closing < 0 || strings.TrimSpace(stripComment(trimmed[closing+1:])) != "" {
				bad(indent, indent+len(trimmed), "Invalid section header",
					fmt.Sprintf("%q: a section header is [GROUP], [GROUP:vars] or [GROUP:children], alone on its line.", trimmed))
				group, kind = nil, ""
				continue
			}
			name, k, _ := strings.Cut(trimmed[1:closing], ":")
			name = strings.TrimSpace(name)
			switch k {
			case "":
				k = "hosts"
			case "vars", "children":
			default:
				bad(indent, indent+closing+1, "Invalid section header",
					fmt.Sprintf("[%s]: a section is [GROUP], [GROUP:vars] or [GROUP:children], not :%s.", trimmed[1:closing], k))
				group, kind = nil, ""
				continue
			}
			if name == "" || strings.ContainsAny(name, " \t") {
				bad(indent, indent+closing+1, "Invalid group name", fmt.Sprintf("%q: a group name is one word.", name))
				group, kind = nil, ""
				continue
			}
			group, kind = inv.group(Value[string]{V: name, Range: sl.rng(indent+1, indent+1+len(name))}), k
			continue
		}
		if group == nil {
			continue // in a section already reported
		}
		switch kind {
		case "children":
			name := strings.TrimSpace(stripComment(trimmed))
			if name == "" || strings.ContainsAny(name, " \t=") {
				bad(indent, indent+len(trimmed), "Invalid child group", fmt.Sprintf("%q: a [%s:children] line names one group.", trimmed, group.name.V))
				continue
			}
			if name == "all" || name == group.name.V {
				bad(indent, indent+len(name), "Invalid child group", fmt.Sprintf("Group %q cannot be a child of %q.", name, group.name.V))
				continue
			}
			inv.group(Value[string]{V: name, Range: sl.rng(indent, indent+len(name))})
			group.children = appendNew(group.children, name)
		case "vars":
			k, v, ok := strings.Cut(trimmed, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				bad(indent, indent+len(trimmed), "Invalid group variable", fmt.Sprintf("%q: a [%s:vars] line is NAME=VALUE.", trimmed, group.name.V))
				continue
			}
			voff := indent + strings.Index(trimmed, "=") + 1 + (len(v) - len(strings.TrimLeft(v, " \t")))
			val := unquote(strings.TrimSpace(v))
			group.vars[k] = Value[string]{V: val, Range: sl.rng(voff, voff+len(strings.TrimSpace(v)))}
		case "hosts":
			toks, err := splitINIHostLine(line)
			if err != nil {
				bad(indent, indent+len(trimmed), "Invalid host line", fmt.Sprintf("%v: a host line is NAME[:PORT] followed by NAME=VALUE variables.", err))
				continue
			}
			if len(toks) == 0 {
				continue
			}
			vars := map[string]Value[string]{}
			ok := true
			for _, t := range toks[1:] {
				k, v, found := strings.Cut(t.text, "=")
				if !found || k == "" {
					bad(start+t.off, start+t.off+len(t.raw), "Invalid host variable",
						fmt.Sprintf("%q: the words after a host's name are its variables, NAME=VALUE (quote a value with spaces).", t.raw))
					ok = false
					break
				}
				vstart := start + t.off + strings.Index(t.raw, "=") + 1
				vars[k] = Value[string]{V: v, Range: sl.rng(vstart, start+t.off+len(t.raw))}
			}
			if !ok {
				continue
			}
			pattern, from := toks[0].text, start+toks[0].off
			if host, port, ok := strings.Cut(pattern, ":"); ok && !strings.Contains(port, ":") && !strings.Contains(pattern, "[") {
				if n, err := strconv.Atoi(port); err == nil && n >= 1 && n <= 65535 {
					if _, set := vars["ansible_port"]; !set {
						vars["ansible_port"] = Value[string]{V: port, Range: sl.rng(from+len(host)+1, from+len(pattern))}
					}
					pattern = host
				} else {
					bad(from+len(host)+1, from+len(pattern), "Invalid port", fmt.Sprintf("%q: the port after a host's name is a number from 1 to 65535.", port))
					continue
				}
			}
			names, err := expandHostPattern(pattern)
			if err != nil {
				bad(from, from+len(toks[0].raw), "Invalid host range", fmt.Sprintf("%q: %v.", pattern, err))
				continue
			}
			rng := sl.rng(from, from+len(pattern))
			for _, n := range names {
				inv.addHost(group, Value[string]{V: n, Range: rng}, vars)
			}
		}
	}
	return inv, diags
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// stripComment cuts a line at a # or ; that starts a word.
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if (s[i] == '#' || s[i] == ';') && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// unquote strips one pair of matching quotes around a value.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

type iniToken struct {
	text string // with quotes removed
	raw  string // as written
	off  int    // byte offset in the line
}

// splitINIHostLine splits a host line into words as Ansible's shlex does:
// spaces separate words, quotes group, a # starting a word ends the line.
func splitINIHostLine(line string) ([]iniToken, error) {
	var toks []iniToken
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			break
		}
		start := i
		var b strings.Builder
		for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' {
			c := line[i]
			if c == '"' || c == '\'' {
				end := strings.IndexByte(line[i+1:], c)
				if end < 0 {
					return nil, fmt.Errorf("unclosed quote at column %d", i+1)
				}
				b.WriteString(line[i+1 : i+1+end])
				i += end + 2
				continue
			}
			b.WriteByte(c)
			i++
		}
		toks = append(toks, iniToken{text: b.String(), raw: line[start:i], off: start})
	}
	return toks, nil
}

// maxRangeHosts bounds what one host pattern expands to (one controller
// takes a few thousand hosts; see README.md).
const maxRangeHosts = 10000

// expandHostPattern expands Ansible's host ranges: pi-[01:20] (numbers,
// zero-padded as the first is), [a:f] (letters), [1:9:2] (a step), any
// number of them in one name.
func expandHostPattern(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("a host needs a name")
	}
	return expandRanges(p)
}

func expandRanges(p string) ([]string, error) {
	open := strings.IndexByte(p, '[')
	if open < 0 {
		if strings.ContainsRune(p, ']') {
			return nil, fmt.Errorf("a ] without [")
		}
		return []string{p}, nil
	}
	closing := strings.IndexByte(p[open:], ']')
	if closing < 0 {
		return nil, fmt.Errorf("a [ without ]")
	}
	closing += open
	parts := strings.Split(p[open+1:closing], ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("a range is [FIRST:LAST] or [FIRST:LAST:STEP]")
	}
	step := 1
	if len(parts) == 3 {
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("the step %q of a range is a whole number from 1", parts[2])
		}
		step = n
	}
	var items []string
	lo, hi := parts[0], parts[1]
	if a, err1 := strconv.Atoi(lo); err1 == nil {
		b, err2 := strconv.Atoi(hi)
		if err2 != nil || a < 0 || b < a {
			return nil, fmt.Errorf("the range [%s:%s] does not count up from 0 or more", lo, hi)
		}
		if (b-a)/step >= maxRangeHosts {
			return nil, fmt.Errorf("the range [%s:%s] has more than %d hosts", lo, hi, maxRangeHosts)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for n := a; n <= b; n += step {
			items = append(items, fmt.Sprintf("%0*d", width, n))
		}
	} else if len(lo) == 1 && len(hi) == 1 && isLetter(lo[0]) && isLetter(hi[0]) && lo[0] <= hi[0] {
		for c := int(lo[0]); c <= int(hi[0]); c += step {
			items = append(items, string(rune(c)))
		}
	} else {
		return nil, fmt.Errorf("[%s:%s] is not a range of numbers or of letters", lo, hi)
	}
	rest, err := expandRanges(p[closing+1:])
	if err != nil {
		return nil, err
	}
	if len(items)*len(rest) > maxRangeHosts {
		return nil, fmt.Errorf("the ranges make more than %d hosts", maxRangeHosts)
	}
	var out []string
	for _, it := range items {
		for _, r := range rest {
			out = append(out, p[:open]+it+r)
		}
	}
	return out, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
