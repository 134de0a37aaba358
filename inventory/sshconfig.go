package inventory

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// SSHConfig is an OpenSSH client configuration as ssh(1) 9 reads it: the
// user's file (~/.ssh/config), the files it includes, then the system's
// (/etc/ssh/ssh_config) and the files that includes. Resolve evaluates it
// for one host, Host and Match sections included, the way ssh -G does.
//
// Loading reads every file once and checks its syntax; what a keyword
// means for a host is decided by Resolve, since in OpenSSH it depends on
// which sections are active for that host (even whether an unknown
// keyword is an error: IgnoreUnknown is a setting like any other).
type SSHConfig struct {
	files []*configFile // the user's, then the system's
}

// configFile is one file's lines, its Include lines holding the files
// they include.
type configFile struct {
	name  string
	lines []configLine
}

// configLine is one line with a keyword.
type configLine struct {
	file string
	n    int
	key  string   // lowercased
	args []string // as OpenSSH splits them: quotes and escapes undone, comments dropped
	rest string   // the text after the keyword and its separator, as ProxyCommand, ProxyJump and Match read it
	// include holds, for an Include line, the files its globs matched,
	// each parsed: OpenSSH parses them whether or not the line is active.
	include []*configFile
}

func (l configLine) where() string { return fmt.Sprintf("%s:%d", l.file, l.n) }

// maxIncludeDepth is OpenSSH's READCONF_MAX_DEPTH.
const maxIncludeDepth = 16

// loader reads configuration files; tests and the fuzzer give it no
// files at all.
type loader struct {
	home     string
	readFile func(name string) ([]byte, error)
	glob     func(pattern string) ([]string, error)
	checkOwn func(name string) error // nil: no permission check
}

// LoadSSHConfig reads the user's configuration file, then the system's,
// with what each includes. A file that does not exist is no error (an
// operator with no ~/.ssh/config); an empty name skips that file. home is
// where ~ and relative Include paths of the user's file point.
func LoadSSHConfig(user, system, home string) (*SSHConfig, error) {
	ld := &loader{home: home, readFile: os.ReadFile, glob: filepath.Glob, checkOwn: checkPermissions}
	cfg := &SSHConfig{}
	for _, f := range []struct {
		name string
		user bool
	}{{user, true}, {system, false}} {
		if f.name == "" {
			continue
		}
		b, err := ld.readFile(f.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if f.user {
			if err := ld.checkOwn(f.name); err != nil {
				return nil, err
			}
		}
		cf, err := ld.parse(f.name, string(b), f.user, 0)
		if err != nil {
			return nil, err
		}
		cfg.files = append(cfg.files, cf)
	}
	return cfg, nil
}

// ParseSSHConfig reads the text of a user's ssh_config file, named
// "ssh_config" in errors. Its Include lines match no files.
func ParseSSHConfig(text string) (*SSHConfig, error) {
	ld := &loader{
		readFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist },
		glob:     func(string) ([]string, error) { return nil, nil },
	}
	cf, err := ld.parse("ssh_config", text, true, 0)
	if err != nil {
		return nil, err
	}
	return &SSHConfig{files: []*configFile{cf}}, nil
}

// checkPermissions refuses, as ssh does, a configuration file that others
// may write, or that someone else owns: they could make ssh run any
// command through ProxyCommand.
func checkPermissions(name string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: bad permissions %v: others may write it (ssh refuses it too; chmod go-w %s)", name, fi.Mode().Perm(), name)
	}
	if !ownedByUserOrRoot(fi) {
		return fmt.Errorf("%s: bad owner: neither you nor root owns it (ssh refuses it too)", name)
	}
	return nil
}

// parse reads one file's text. user is true for the user's file and what
// it includes: there ~ is allowed in Include and a relative Include path
// is under ~/.ssh; in the system's, under /etc/ssh.
func (ld *loader) parse(name, text string, user bool, depth int) (*configFile, error) {
	cf := &configFile{name: name}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		key, args, rest, err := splitLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if key == "" {
			continue // a blank line or a comment
		}
		l := configLine{file: name, n: n, key: key, args: args, rest: rest}
		if err := checkSyntax(l); err != nil {
			return nil, err
		}
		if key == "include" {
			if l.include, err = ld.includes(l, user, depth); err != nil {
				return nil, err
			}
		}
		cf.lines = append(cf.lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cf, nil
}

// includes reads the files an Include line names, as readconf.c does:
// each argument a glob(3) pattern, relative ones under ~/.ssh (the user's
// files) or /etc/ssh (the system's), matches in sorted order, a pattern
// that matches nothing skipped.
func (ld *loader) includes(l configLine, user bool, depth int) ([]*configFile, error) {
	if depth+1 > maxIncludeDepth {
		return nil, fmt.Errorf("%s: too many nested Include (more than %d)", l.where(), maxIncludeDepth)
	}
	var out []*configFile
	for _, arg := range l.args {
		p := arg
		switch {
		case strings.HasPrefix(p, "~") && !user:
			return nil, fmt.Errorf("%s: bad Include path %s: ~ only in the user's configuration", l.where(), arg)
		case strings.HasPrefix(p, "~/") || p == "~":
			p = filepath.Join(ld.home, p[1:])
		case strings.HasPrefix(p, "~"):
			return nil, fmt.Errorf("%s: Include %s: ~user paths are not supported", l.where(), arg)
		case filepath.IsAbs(p):
		case user:
			p = filepath.Join(ld.home, ".ssh", p)
		default:
			p = filepath.Join("/etc/ssh", p)
		}
		matches, err := ld.glob(p)
		if err != nil {
			return nil, fmt.Errorf("%s: Include %s: %w", l.where(), arg, err)
		}
		sort.Strings(matches)
		for _, m := range matches {
			b, err := ld.readFile(m)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: Include %s: %w", l.where(), m, err)
			}
			if ld.checkOwn != nil {
				if err := ld.checkOwn(m); err != nil {
					return nil, fmt.Errorf("%s: Include: %w", l.where(), err)
				}
			}
			cf, err := ld.parse(m, string(b), user, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, cf)
		}
	}
	return out, nil
}

// splitLine splits a line the way OpenSSH does: a keyword, then
// whitespace or one "=", then arguments separated by whitespace. Quotes
// (" or ') group an argument's spaces anywhere in it, \ escapes a quote,
// a backslash or a space, and an argument starting with # begins a comment
// (User pi # the default). A blank line or a comment gives key "". rest
// is the text after the separator, as OpenSSH hands it to the keywords
// that read the raw line (ProxyCommand, ProxyJump, Match).
func splitLine(line string) (key string, args []string, rest string, err error) {
	s := strings.Trim(line, " \t\r\n\f")
	if s == "" || s[0] == '#' {
		return "", nil, "", nil
	}
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		return "", nil, "", fmt.Errorf("%q has no value", s)
	}
	key = strings.ToLower(s[:i])
	rest = strings.TrimLeft(s[i:], " \t")
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
		return "", nil, "", fmt.Errorf("unterminated quote in %q", s)
	}
	if inArg {
		args = append(args, string(arg))
	}
	if len(args) == 0 {
		return "", nil, "", fmt.Errorf("%q has no value", s)
	}
	return key, args, rest, nil
}

// checkSyntax refuses what ssh refuses whether or not the line applies
// to the host: an empty value, several values where one is read.
func checkSyntax(l configLine) error {
	k, ok := keywords[l.key]
	if !ok {
		return nil // unknown: an error only where IgnoreUnknown does not cover it (Resolve)
	}
	if l.key != "match" && l.key != "proxycommand" && l.key != "proxyjump" && l.args[0] == "" {
		return fmt.Errorf("%s: %s has an empty value", l.where(), l.key)
	}
	if k.single && len(l.args) > 1 {
		return fmt.Errorf("%s: %s takes one value, not %d (quote a value with spaces)", l.where(), l.key, len(l.args))
	}
	return nil
}
