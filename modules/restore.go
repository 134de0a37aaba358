package modules

import (
	"fmt"
	"path"
	"strings"
)

// Restore is what decides whether the host's boot loads the persisted
// rules: netfilter-persistent with its iptables plugins, its service
// enabled, and no other service that loads a firewall of its own at boot
// (or, as nftables.service's default /etc/nftables.conf does, flushes
// every rule).
type Restore struct {
	// Packages is dpkg's status of each package it knows ("ii": installed
	// and configured; "iU", "iF": an install that did not finish). Nil
	// when the host did not say (no dpkg).
	Packages map[string]string
	Plugins  map[string]bool // netfilter-persistent's plugins present
	// Units is each service's `systemctl is-enabled` ("" for no such
	// unit); nil on a host without systemd, where piwall cannot tell.
	Units      map[string]string
	UFWEnabled bool // /etc/ufw/ufw.conf says ENABLED=yes
}

// The packages and plugins the boot needs to load piwall's files.
var (
	restorePackages = []string{"iptables", "netfilter-persistent", "iptables-persistent"}
	restorePlugins  = []string{"15-ip4tables", "25-ip6tables"}
)

// missing is what of the packages and plugins the host lacks, or an
// install did not finish: prepare installs them.
func (r Restore) missing() []string {
	var out []string
	if r.Packages != nil {
		for _, p := range restorePackages {
			if st := r.Packages[p]; st != "ii" {
				if st == "" {
					st = "not installed"
				}
				out = append(out, p+" ("+st+")")
			}
		}
	}
	if r.Plugins != nil {
		for _, p := range restorePlugins {
			if !r.Plugins[p] {
				out = append(out, "plugin "+p)
			}
		}
	}
	return out
}

// setsLoad reports whether the boot loads the persisted address sets
// before the rules that match them: ipset-persistent and its plugin,
// where the host says which packages and plugins it has.
func (r Restore) setsLoad() bool {
	return (r.Packages == nil || r.Packages["ipset-persistent"] == "ii") && (r.Plugins == nil || r.Plugins["10-ipset"])
}

// conflict is a service enabled on the host that would undo piwall's
// rules at boot, with what to do about it; "" when there is none.
func (r Restore) conflict() (what, hint string) {
	switch {
	case r.Units["nftables"] == "enabled":
		return "nftables.service is enabled: at boot it loads /etc/nftables.conf, whose default begins with flush ruleset, which removes piwall's rules",
			"if /etc/nftables.conf holds nothing you need: sudo systemctl disable nftables, then run piwall again"
	case r.Units["ufw"] == "enabled" && r.UFWEnabled:
		return "ufw is enabled: it loads its own firewall at boot, over piwall's",
			"one firewall manager per host: sudo ufw disable, then run piwall again"
	case r.Units["firewalld"] == "enabled":
		return "firewalld is enabled: it loads its own firewall at boot, over piwall's",
			"one firewall manager per host: sudo systemctl disable --now firewalld, then run piwall again"
	case strings.HasPrefix(r.Units["netfilter-persistent"], "masked"):
		return "netfilter-persistent is masked: the boot would not load the rules",
			"if nothing else needs it masked: sudo systemctl unmask netfilter-persistent, then run piwall again"
	}
	return "", ""
}

// disabled reports whether netfilter-persistent is installed but would
// not start at boot: prepare enables it.
func (r Restore) disabled() bool { return r.Units["netfilter-persistent"] == "disabled" }

// parseRestore reads the restore section: "package NAME STATUS",
// "plugin NAME", "unit NAME STATE" and "ufw-enabled" lines.
func parseRestore(lines []string) Restore {
	var r Restore
	for _, line := range lines {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "package":
			if r.Packages == nil {
				r.Packages = map[string]string{}
			}
			r.Packages[f[1]] = f[2]
		case len(f) == 2 && f[0] == "plugin":
			if r.Plugins == nil {
				r.Plugins = map[string]bool{}
			}
			r.Plugins[f[1]] = true
		case len(f) >= 2 && f[0] == "unit":
			if r.Units == nil {
				r.Units = map[string]string{}
			}
			r.Units[f[1]] = strings.Join(f[2:], " ")
		case len(f) == 1 && f[0] == "ufw-enabled":
			r.UFWEnabled = true
		}
	}
	// Plugins are known once the packages are: none found is none there.
	if r.Packages != nil && r.Plugins == nil {
		r.Plugins = map[string]bool{}
	}
	return r
}

// RulesFS is the file system the rules files are kept on.
type RulesFS struct {
	Dir        string // the rules directory, or the nearest that exists
	MountPoint string
	Type       string // as the mounts name it: ext4, tmpfs, overlay, ...
	ReadOnly   bool
	// OverlayBoot: the kernel was booted with boot=overlay, raspi-config's
	// overlay root, which keeps every write in RAM.
	OverlayBoot bool
}

// Ephemeral says why rules persisted on fs are gone at the next boot; ""
// when they are not.
func (fs RulesFS) Ephemeral() string {
	switch {
	case fs.OverlayBoot:
		return fmt.Sprintf("the host boots with an overlay root (boot=overlay, raspi-config's overlay file system): what is written to %s is kept in RAM and gone at the next boot", fs.Dir)
	case fs.Type == "tmpfs" || fs.Type == "ramfs":
		return fmt.Sprintf("%s is on %s (mounted on %s): what is written there is gone at the next boot", fs.Dir, fs.Type, fs.MountPoint)
	}
	return ""
}

// parseMounts finds the mount that holds dir in /proc/self/mountinfo's
// lines: the last of the longest mount points above it.
func parseMounts(dir string, lines []string) (RulesFS, error) {
	fs := RulesFS{Dir: dir}
	best := -1
	for i, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 {
			return fs, fmt.Errorf("mounts: line %d is not mountinfo's: %q", i+1, line)
		}
		mp := unescapeMount(f[4])
		if !pathUnder(dir, mp) || len(mp) < best {
			continue
		}
		best = len(mp)
		fs.MountPoint, fs.Type = mp, g[0]
		fs.ReadOnly = false
		for _, o := range strings.Split(f[5], ",") {
			if o == "ro" {
				fs.ReadOnly = true
			}
		}
	}
	return fs, nil
}

// pathUnder reports whether p is dir or below it.
func pathUnder(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3'
}
