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
	key, value string // key lowercased
}

var sshKeywords = map[string]bool{
	"hostname": true, "user": true, "port": true, "identityfile": true,
	"proxyjump": true, "userknownhostsfile": true,
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
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, err := splitKeyword(line)
		if err != nil {
			return nil, fmt.Errorf("ssh_config line %d: %w", n, err)
		}
		switch key {
		case "host":
			cfg.sections = append(cfg.sections, *cur)
			cur = &section{patterns: strings.Fields(value)}
			skipping = false
		case "match":
			cfg.sections = append(cfg.sections, *cur)
			cur = &section{}
			skipping = true
		default:
			if !skipping && sshKeywords[key] {
				cur.params = append(cur.params, param{key, value})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ssh_config: %w", err)
	}
	cfg.sections = append(cfg.sections, *cur)
	return cfg, nil
}

// splitKeyword splits "Keyword value", "Keyword=value" or
// `Keyword "quoted value"`.
func splitKeyword(line string) (string, string, error) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return "", "", fmt.Errorf("%q has no value", line)
	}
	key := strings.ToLower(line[:i])
	value := strings.TrimSpace(line[i:])
	value = strings.TrimSpace(strings.TrimPrefix(value, "="))
	if strings.HasPrefix(value, `"`) {
		end := strings.IndexByte(value[1:], '"')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated quote in %q", line)
		}
		value = value[1 : end+1]
	}
	if value == "" {
		return "", "", fmt.Errorf("%q has no value", line)
	}
	return key, value, nil
}

// Lookup returns the values of key for host alias, in file order. As in
// OpenSSH, for single-valued keys the first is the one that counts;
// IdentityFile accumulates.
func (c *SSHConfig) Lookup(alias, key string) []string {
	if c == nil {
		return nil
	}
	key = strings.ToLower(key)
	var out []string
	for _, s := range c.sections {
		if !s.matches(alias) {
			continue
		}
		for _, p := range s.params {
			if p.key == key {
				out = append(out, expandTokens(p.value, alias))
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

// expandTokens expands %h (the alias) and %% in a value.
func expandTokens(v, alias string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+1 < len(v) {
			switch v[i+1] {
			case 'h':
				b.WriteString(alias)
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
