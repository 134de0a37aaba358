package inventory

import (
	"bufio"
	"fmt"
	"path"
	"strings"
)

// SSHConfig is what piwall reads of an OpenSSH client configuration
// (~/.ssh/config): Host sections and, in them, HostName, User, Port,
// IdentityFile, ProxyJump and UserKnownHostsFile. Other keywords are
// ignored; Match sections are skipped whole.
type SSHConfig struct {
	sections []section
}

type section struct {
	patterns []string // "!pattern" negates
	params   []param
}

type param struct {
	key  string   // lowercased
	args []string // as OpenSSH splits them: quotes and escapes undone
}

// sshKeywords are the keywords piwall reads; true for those that take
// several arguments.
var sshKeywords = map[string]bool{
	"hostname": false, "user": false, "port": false, "identityfile": false,
	"proxyjump": false, "userknownhostsfile": true,
}

// ParseSSHConfig reads the text of an ssh_config file.
func ParseSSHConfig(text string) (*SSHConfig, error) {
	cfg := &SSHConfig{}
	// Parameters before the first Host apply to every host.
	cur := &section{patterns: []string{"*"}}
	skipping := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		key, args, err := splitLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("ssh_config line %d: %w", n, err)
		}
		switch key {
		case "":
			// A blank line or a comment.
		case "host":
			cfg.sections = append(cfg.sections, *cur)
			cur = &section{patterns: args}
			skipping = false
		case "match":
			cfg.sections = append(cfg.sections, *cur)
			cur = &section{}
			skipping = true
		default:
			several, known := sshKeywords[key]
			if !known {
				continue
			}
			// OpenSSH refuses these too: ssh would not connect either.
			if args[0] == "" {
				return nil, fmt.Errorf("ssh_config line %d: %s has an empty value", n, key)
			}
			if len(args) > 1 && !several {
				return nil, fmt.Errorf("ssh_config line %d: %s takes one value, not %d (quote a value with spaces)", n, key, len(args))
			}
			if !skipping {
				cur.params = append(cur.params, param{key, args})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ssh_config: %w", err)
	}
	cfg.sections = append(cfg.sections, *cur)
	return cfg, nil
}

// splitLine splits a line the way OpenSSH does: a keyword, then
// whitespace or one "=", then arguments separated by whitespace. Quotes
// (" or ') group an argument's spaces anywhere in it, \ escapes a quote,
// a backslash or a space, and an argument starting with # begins a comment
// (User pi # the default). A blank line or a comment gives key "".
func splitLine(line string) (key string, args []string, err error) {
	s := strings.Trim(line, " \t\r\n\f")
	if s == "" || s[0] == '#' {
		return "", nil, nil
	}
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		return "", nil, fmt.Errorf("%q has no value", s)
	}
	key = strings.ToLower(s[:i])
	rest := strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	var arg []byte
	inArg := false
	var quote byte
	for j := 0; j < len(rest); j++ {
		c := rest[j]
		switch {
		case c == '\\' && j+1 < len(rest) && (rest[j+1] == '"' || rest[j+1] == '\'' || rest[j+1] == '\\' || (quote == 0 && rest[j+1] == ' ')):
			j++
			arg, inArg = append(arg, rest[j]), true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inArg {
				args, arg, inArg = append(args, string(arg)), nil, false
			}
		case quote == 0 && !inArg && c == '#':
			j = len(rest) // the rest of the line is a comment
		case quote == 0 && (c == '"' || c == '\''):
			quote, inArg = c, true
		case quote != 0 && c == quote:
			quote = 0
		default:
			arg, inArg = append(arg, c), true
		}
	}
	if quote != 0 {
		return "", nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inArg {
		args = append(args, string(arg))
	}
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%q has no value", s)
	}
	return key, args, nil
}

// Lookup returns the values of key for host alias, in file order, one for
// each line that sets it (a line's several values joined by spaces). As in
// OpenSSH, for single-valued keys the first is the one that counts;
// IdentityFile accumulates.
func (c *SSHConfig) Lookup(alias, key string) []string {
	var out []string
	for _, args := range c.lines(alias, key) {
		out = append(out, strings.Join(args, " "))
	}
	return out
}

// lines returns the arguments of each line that sets key for alias, in
// file order, with their tokens expanded. %h is the alias in HostName and,
// as in OpenSSH, the host name HostName gives elsewhere (IdentityFile
// ~/.ssh/%h.key names the key of the real host).
func (c *SSHConfig) lines(alias, key string) [][]string {
	if c == nil {
		return nil
	}
	key = strings.ToLower(key)
	host := alias
	if key != "hostname" {
		if h := c.Get(alias, "hostname"); h != "" {
			host = h
		}
	}
	var out [][]string
	for _, s := range c.sections {
		if !s.matches(alias) {
			continue
		}
		for _, p := range s.params {
			if p.key == key {
				args := make([]string, len(p.args))
				for i, a := range p.args {
					args[i] = expandTokens(a, host)
				}
				out = append(out, args)
			}
		}
	}
	return out
}

// Get returns the first value of key for alias, or "".
func (c *SSHConfig) Get(alias, key string) string {
	if v := c.Lookup(alias, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s section) matches(alias string) bool {
	matched := false
	for _, p := range s.patterns {
		neg := strings.HasPrefix(p, "!")
		ok, _ := path.Match(strings.TrimPrefix(p, "!"), alias)
		if ok && neg {
			return false
		}
		if ok {
			matched = true
		}
	}
	return matched
}

// expandTokens expands %h (to host) and %% in a value.
func expandTokens(v, host string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+1 < len(v) {
			switch v[i+1] {
			case 'h':
				b.WriteString(host)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
