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
	Jump          string   // ProxyJump: [user@]host[:port], several joined by commas
	KnownHosts    []string // host key files; unknown keys, when accepted, go to the first
	Sudo          bool     // privileged steps go through sudo -n when User is not root
	RevertAfter   time.Duration
	Host          *plans.Host // nil for an address given on the command line
}

// Addr is the host and port to dial.
func (t Target) Addr() string { return net.JoinHostPort(t.Address, strconv.Itoa(t.Port)) }

// Env is what of the operator's machine shapes the targets.
type Env struct {
	SSHConfig *SSHConfig // nil: no ~/.ssh/config
	Home      string     // for ~ in paths and the default key and known_hosts files
	LocalUser string     // the user when nothing else names one
}

// Targets lists the plan's hosts as targets, in plan order. Each setting
// comes from the host block, else the plan's defaults, else ~/.ssh/config
// for the host's address, else OpenSSH's default.
func Targets(p *plans.Plan, env Env) []Target {
	var out []Target
	for _, h := range p.Hosts {
		c, d := h.Connection, p.Defaults
		t := env.target(h.Address.V, "", 0)
		t.Label, t.Host = h.Name, h
		if v := pick(c.User, d.User); v != nil {
			t.User = v.V
		}
		if v := pick(c.Port, d.Port); v != nil {
			t.Port = v.V
		}
		if v := pick(c.IdentityFile, d.IdentityFile); v != nil {
			t.IdentityFiles, t.UseAgent = []string{env.expand(v.V)}, false
		}
		if v := pick(c.Jump, d.Jump); v != nil {
			t.Jump = v.V
			if v.V == "none" { // as in ssh_config: no jump, whatever ~/.ssh/config says
				t.Jump = ""
			}
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
	return out
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
	t := env.target(host, user, port)
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

// target is a host's settings from ~/.ssh/config and OpenSSH's defaults.
func (env Env) target(alias, user string, port int) Target {
	cfg := env.SSHConfig
	t := Target{Address: alias, Port: 22, User: env.LocalUser, UseAgent: true, Sudo: true, RevertAfter: plans.DefaultRevertAfter}
	if v := cfg.Get(alias, "HostName"); v != "" {
		t.Address = v
	}
	if v := cfg.Get(alias, "User"); v != "" {
		t.User = v
	}
	if v, err := strconv.Atoi(cfg.Get(alias, "Port")); err == nil && v > 0 && v < 65536 {
		t.Port = v
	}
	if v := cfg.Get(alias, "ProxyJump"); v != "" && v != "none" {
		t.Jump = v
	}
	for _, f := range cfg.Lookup(alias, "IdentityFile") {
		t.IdentityFiles = append(t.IdentityFiles, env.expand(f))
	}
	if len(t.IdentityFiles) == 0 {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			t.IdentityFiles = append(t.IdentityFiles, filepath.Join(env.Home, ".ssh", name))
		}
	}
	if files := cfg.lines(alias, "UserKnownHostsFile"); len(files) > 0 {
		for _, f := range files[0] {
			t.KnownHosts = append(t.KnownHosts, env.expand(f))
		}
	}
	if len(t.KnownHosts) == 0 {
		t.KnownHosts = []string{filepath.Join(env.Home, ".ssh", "known_hosts")}
	}
	if user != "" {
		t.User = user
	}
	if port != 0 {
		t.Port = port
	}
	return t
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
