package inventory

import (
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/piwall/piwall/plans"
)

// Target is a host as piwall connects to it.
type Target struct {
	Label         string // the host's label in the plan, or the address given
	Address       string // what to connect to: an IP address or a DNS name
	Port          int
	User          string
	IdentityFiles []string // the keys to offer, after the agent's when UseAgent
	UseAgent      bool
	// IdentityAgent is the agent's socket: "" or "SSH_AUTH_SOCK" for
	// $SSH_AUTH_SOCK, "$NAME" for another variable's, else a path.
	IdentityAgent string
	// IdentitiesOnly offers only the agent's keys that IdentityFiles or
	// CertificateFiles name.
	IdentitiesOnly   bool
	CertificateFiles []string // certificates to offer with their keys (KEY-cert.pub files are tried too)
	// Jump is the ProxyJump as ssh -G prints it: [user@]host[:port],
	// several joined by commas; "" for none. Hops are its hosts in
	// dialling order, each resolved through ssh_config with its own
	// address, user, port, keys and known_hosts; the first may have its
	// own Hops or ProxyCommand.
	Jump string
	Hops []Target
	// ProxyCommand, tokens expanded, is run by the shell and its stdin
	// and stdout are the connection; "" for none. ssh_config gives
	// ProxyJump or ProxyCommand, never both: the first one set wins.
	ProxyCommand string
	// HostKeyAlias is the name known_hosts knows the host by, instead of
	// Address and Port.
	HostKeyAlias     string
	KnownHosts       []string // the user's host key files; unknown keys, when accepted, go to the first
	GlobalKnownHosts []string // the system's host key files, consulted after KnownHosts
	HashKnownHosts   bool     // record accepted keys with hashed host names
	// StrictHostKeyChecking is ssh_config's: yes, ask, accept-new or
	// no. piwall checks host keys whatever it says; "no" is refused
	// unless the operator says so.
	StrictHostKeyChecking string
	ConnectTimeout        time.Duration // 0: the dialer's
	// Algorithms are those ssh_config sets (Ciphers, MACs,
	// KexAlgorithms, HostKeyAlgorithms, PubkeyAcceptedAlgorithms),
	// resolved as OpenSSH resolves them; a nil list: the dialer's own.
	Algorithms  Algorithms
	Sudo        bool // privileged steps go through sudo -n when User is not root
	RevertAfter time.Duration
	Host        *plans.Host // nil for an address given on the command line
}

// Addr is the host and port to dial.
func (t Target) Addr() string { return net.JoinHostPort(t.Address, strconv.Itoa(t.Port)) }

// Env is what of the operator's machine shapes the targets.
type Env struct {
	SSHConfig *SSHConfig // nil: no ~/.ssh/config
	Home      string     // for ~ in paths and the default key and known_hosts files
	LocalUser string     // the user when nothing else names one
	// What ssh_config's tokens name: the local host name (%l, %L; ""
	// for os.Hostname), user ID (%i; "" for os.Getuid) and environment
	// (${NAME}; nil for os.LookupEnv).
	LocalHost string
	UID       string
	Getenv    func(name string) (string, bool)
}

// Targets lists the plan's hosts as targets, in plan order. Each setting
// comes from the host block, else the plan's defaults, else ssh_config
// for the host's address, else OpenSSH's default. The plan's user, port
// and jump are given to ssh_config as ssh's -l, -p and -J are: Match and
// the tokens see them. An error names the host and, for ssh_config, the
// file and line.
func Targets(p *plans.Plan, env Env) ([]Target, error) {
	var out []Target
	for _, h := range p.Hosts {
		c, d := h.Connection, p.Defaults
		var over SSHOverrides
		if v := pick(c.User, d.User); v != nil {
			over.User = v.V
		}
		if v := pick(c.Port, d.Port); v != nil {
			over.Port = v.V
		}
		if v := pick(c.Jump, d.Jump); v != nil {
			over.ProxyJump = v.V // "none", as in ssh_config: no jump, whatever it says
		}
		t, err := env.target(h.Address.V, over)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		t.Label, t.Host = h.Name, h
		if v := pick(c.IdentityFile, d.IdentityFile); v != nil {
			t.IdentityFiles, t.UseAgent = []string{env.expand(v.V)}, false
		}
		if v := pick(c.KnownHosts, d.KnownHosts); v != nil {
			t.KnownHosts = []string{env.expand(v.V)}
		}
		if v := pick(c.Sudo, d.Sudo); v != nil {
			t.Sudo = v.V
		}
		if v := pick(c.RevertAfter, d.RevertAfter); v != nil {
			t.RevertAfter = v.V
		}
		out = append(out, t)
	}
	return out, nil
}

func pick[T any](host, defaults *plans.Value[T]) *plans.Value[T] {
	if host != nil {
		return host
	}
	return defaults
}

// FromAddress makes a target of "[user@]address[:port]" for a host that no
// plan at hand names (piwall rollback 192.0.2.11).
func FromAddress(spec string, env Env) (Target, error) {
	user, hostport, hasUser := strings.Cut(spec, "@")
	if !hasUser {
		user, hostport = "", spec
	}
	host, port := hostport, 0
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Target{}, fmt.Errorf("%q: bad port %q", spec, p)
		}
		host, port = h, n
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.ContainsAny(host, " /@") || (hasUser && user == "") {
		return Target{}, fmt.Errorf("%q is not [user@]address[:port]", spec)
	}
	t, err := env.target(host, SSHOverrides{User: user, Port: port})
	if err != nil {
		return Target{}, fmt.Errorf("%q: %w", spec, err)
	}
	t.Label = spec
	return t, nil
}

// Lookup turns command-line HOST arguments into targets: each is a label
// of fromPlan (the targets of the plan at hand, if any), else
// [user@]address[:port].
func Lookup(hosts []string, fromPlan []Target, env Env) ([]Target, error) {
	var out []Target
	for _, h := range hosts {
		found := false
		for _, t := range fromPlan {
			if t.Label == h {
				out, found = append(out, t), true
			}
		}
		if found {
			continue
		}
		t, err := FromAddress(h, env)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a host of the plan nor [user@]address[:port]: %w", h, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// target is a host's settings from ssh_config and OpenSSH's defaults,
// its jump hosts resolved too.
func (env Env) target(alias string, over SSHOverrides) (Target, error) {
	return env.resolve(alias, over, nil)
}

// resolve is target for a host reached through the jump hosts of chain.
func (env Env) resolve(alias string, over SSHOverrides, chain []string) (Target, error) {
	h, err := env.SSHConfig.Resolve(alias, env, over)
	if err != nil {
		return Target{}, err
	}
	t := Target{
		Label: alias, Address: h.HostName, Port: h.Port, User: h.User,
		UseAgent: h.IdentityAgent != "none", IdentityAgent: h.IdentityAgent, IdentitiesOnly: h.IdentitiesOnly,
		Jump: h.ProxyJump, HostKeyAlias: h.HostKeyAlias, KnownHosts: h.UserKnownHostsFiles,
		HashKnownHosts: h.HashKnownHosts, StrictHostKeyChecking: h.StrictHostKeyChecking,
		ConnectTimeout: h.ConnectTimeout, Algorithms: h.SetAlgorithms, Sudo: true, RevertAfter: plans.DefaultRevertAfter,
	}
	if t.IdentityAgent == "none" {
		t.IdentityAgent = ""
	}
	for _, f := range h.IdentityFiles {
		x, err := h.expandPath(f, env)
		if err != nil {
			return Target{}, fmt.Errorf("IdentityFile %s: %w", f, err)
		}
		t.IdentityFiles = append(t.IdentityFiles, x)
	}
	for _, f := range h.CertificateFiles {
		x, err := h.expandPath(f, env)
		if err != nil {
			return Target{}, fmt.Errorf("CertificateFile %s: %w", f, err)
		}
		t.CertificateFiles = append(t.CertificateFiles, x)
	}
	for _, f := range h.GlobalKnownHostsFiles {
		x, err := expandTilde(f, env.Home)
		if err != nil {
			return Target{}, fmt.Errorf("GlobalKnownHostsFile %s: %w", f, err)
		}
		t.GlobalKnownHosts = append(t.GlobalKnownHosts, x)
	}
	if t.ProxyCommand, err = h.ExpandProxyCommand(); err != nil {
		return Target{}, fmt.Errorf("ProxyCommand: %w", err)
	}
	if h.ProxyJump == "" {
		return t, nil
	}
	chain = append(chain[:len(chain):len(chain)], alias)
	if len(chain) > maxJumpDepth {
		return Target{}, fmt.Errorf("ProxyJump %s: more than %d jump hosts deep", h.ProxyJump, maxJumpDepth)
	}
	// As ssh, which dials each hop with ssh -J (the hops before it):
	// the first hop's own ProxyJump or ProxyCommand apply, the others'
	// give way to the chain, and each hop's user and port are those the
	// jump names, else its own.
	// ssh expands ProxyJump's tokens (%h, %n, %p, %r: the target's) in
	// the command it makes of it.
	jump, err := expandTokens(h.ProxyJump, "%hnpr", h.tokens)
	if err != nil {
		return Target{}, fmt.Errorf("ProxyJump %s: %w", h.ProxyJump, err)
	}
	hops := strings.Split(jump, ",")
	for i, s := range hops {
		hop, err := ParseJumpHop(s)
		if err != nil {
			return Target{}, fmt.Errorf("ProxyJump %s: %w", h.ProxyJump, err)
		}
		o := SSHOverrides{User: hop.User, Port: hop.Port}
		if i > 0 {
			o.ProxyJump = "none"
		}
		// The first hop is dialled with ssh_config's settings alone, not
		// this destination's -J: ssh -J X X jumps through X to X, where
		// a ProxyJump X that ssh_config gives X loops.
		seen := chain
		if over.ProxyJump != "" {
			seen = chain[:len(chain)-1]
		}
		for _, a := range seen {
			if i == 0 && a == hop.Host {
				return Target{}, fmt.Errorf("ProxyJump loop: %s -> %s (ssh would loop too; leave %s out of the section that gives it that ProxyJump: Host ... !%s)",
					strings.Join(chain, " -> "), hop.Host, hop.Host, hop.Host)
			}
		}
		ht, err := env.resolve(hop.Host, o, chain)
		if err != nil {
			return Target{}, fmt.Errorf("jump host %s: %w", s, err)
		}
		t.Hops = append(t.Hops, ht)
	}
	return t, nil
}

// expand replaces a leading ~ with the home directory.
func (env Env) expand(p string) string {
	if p == "~" {
		return env.Home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(env.Home, p[2:])
	}
	return p
}

// Select keeps the targets that limit picks. limit is a comma-separated
// list of patterns, each a host label or a group name, with shell globs
// (pi-0*, kiosk?); a pattern starting with ! excludes. With no positive
// pattern, every host not excluded is kept. An empty limit keeps all. A
// pattern that picks no host is an error, since it is likely a typo.
func Select(targets []Target, limit string) ([]Target, error) {
	if strings.TrimSpace(limit) == "" {
		return targets, nil
	}
	var include, exclude []string
	for _, p := range strings.Split(limit, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case strings.HasPrefix(p, "!"):
			exclude = append(exclude, p[1:])
		default:
			include = append(include, p)
		}
		if _, err := path.Match(strings.TrimPrefix(p, "!"), ""); err != nil {
			return nil, fmt.Errorf("--limit %q: bad pattern %q", limit, p)
		}
	}
	used := map[string]bool{}
	var out []Target
	for _, t := range targets {
		in := len(include) == 0
		for _, p := range include {
			if picks(p, t) {
				in, used[p] = true, true
			}
		}
		for _, p := range exclude {
			if picks(p, t) {
				in, used["!"+p] = false, true
			}
		}
		if in {
			out = append(out, t)
		}
	}
	for _, p := range include {
		if !used[p] {
			return nil, fmt.Errorf("--limit: %q names no host or group of the plan", p)
		}
	}
	// A mistyped exclusion would leave in the very host meant to be kept
	// out, so it is an error too.
	for _, p := range exclude {
		if p != "" && !used["!"+p] {
			return nil, fmt.Errorf("--limit: %q names no host or group of the plan", "!"+p)
		}
	}
	return out, nil
}

// picks reports whether pattern names the target's label or one of its
// groups.
func picks(pattern string, t Target) bool {
	if ok, _ := path.Match(pattern, t.Label); ok {
		return true
	}
	if t.Host == nil {
		return false
	}
	for _, g := range t.Host.Groups {
		if ok, _ := path.Match(pattern, g.V); ok {
			return true
		}
	}
	return false
}
