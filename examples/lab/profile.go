//go:build linux

package lab

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/piwall/piwall/modules"
)

// A Profile makes a lab Pi one of the Pis people have: another program
// owns part of its firewall. Each is built from Debian's own packages,
// installed from the lab's apt repository once the Pi is up, and runs on a
// systemd Pi, where it starts again at every boot as on a real one.
type Profile string

const (
	// Fail2ban runs Debian's fail2ban, jail sshd reading sshd's journal
	// and banning with iptables (f2b-sshd): three failed logins from an
	// address ban it for an hour.
	Fail2ban Profile = "fail2ban"
	// Hotspot masquerades a network behind the Pi: its nat rule is
	// persisted in /etc/iptables/rules.v4, which netfilter-persistent
	// loads at boot.
	Hotspot Profile = "hotspot"
	// Legacy has a filter rule loaded with iptables-legacy while iptables
	// is iptables-nft, as an upgrade or an old tool leaves a Pi.
	Legacy Profile = "legacy"
	// Docker runs Debian's docker.io (the vfs storage driver, no
	// registry) with one container, web, made from busybox-static: it
	// answers HTTP on the Pi's port ContainerPort, published from its
	// port 80.
	Docker Profile = "docker"
	// StaleRules has rules files that drop everything, SSH too, and no
	// iptables to load them: left by a removed iptables-persistent, or
	// baked into an image. Installing netfilter-persistent would load
	// them.
	StaleRules Profile = "stale-rules"
	// Flood and Silent are broken or hostile Pis: a sudo early on the
	// PATH of SSH commands that prints without end, or never answers
	// (sshd itself still does, keepalives too). They run on any Pi.
	Flood  Profile = "flood"
	Silent Profile = "silent"
)

// Profiles are the lab's profiles.
var Profiles = []Profile{Fail2ban, Hotspot, Legacy, Docker, StaleRules, Flood, Silent}

// bareProfiles install nothing; the hostile ones need no systemd either.
var (
	bareProfiles    = []Profile{StaleRules, Flood, Silent}
	hostileProfiles = []Profile{Flood, Silent}
)

// ContainerPort is the port a Docker Pi publishes its container on, and
// ContainerPage what the container answers there.
const (
	ContainerPort = 8080
	ContainerPage = "lab-container"
)

// HotspotNet is the network a Hotspot Pi masquerades (inside the lab's
// range, though no host of the lab is on it).
const HotspotNet = "198.18.42.0/24"

// profilePackages are the packages of each profile, beyond iptables and
// netfilter-persistent, which every profile installs first, as the real
// packages depend on them.
var profilePackages = map[Profile][]string{
	Fail2ban: {"fail2ban", "python3-systemd"},
	Docker:   {"docker.io", "busybox-static"},
}

// profileScripts set a profile up, as root on its Pi, after its packages.
var profileScripts = map[Profile]string{
	Fail2ban: `cat >/etc/fail2ban/jail.d/lab.conf <<'EOF'
[DEFAULT]
banaction = iptables-multiport
banaction_allports = iptables-allports
backend = systemd
[sshd]
enabled = true
maxretry = 3
findtime = 10m
bantime = 1h
EOF
systemctl restart fail2ban
i=0
until fail2ban-client status sshd >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "fail2ban did not start its sshd jail" >&2; exit 1; }
  sleep 0.1
done
`,
	Hotspot: `cat >/etc/iptables/rules.v4 <<'EOF'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s ` + HotspotNet + ` -o eth0 -j MASQUERADE
COMMIT
EOF
systemctl restart netfilter-persistent
`,
	Legacy: `iptables-legacy -A INPUT -s ` + Intruder.V4.String() + `/32 -j DROP
`,
	Docker: `mkdir -p /etc/docker
echo '{"storage-driver": "vfs", "ip6tables": false}' >/etc/docker/daemon.json
systemctl restart docker
i=0
until docker info >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "dockerd did not start" >&2; journalctl -u docker --no-pager | tail -n 20 >&2; exit 1; }
  sleep 0.1
done
# The image: busybox-static's busybox, a shell and httpd, and a page.
d=$(mktemp -d)
mkdir -p "$d/bin" "$d/www"
cp /bin/busybox "$d/bin/"
for a in sh httpd nc wget; do ln -s busybox "$d/bin/$a"; done
echo ` + ContainerPage + ` >"$d/www/index.html"
tar -C "$d" -c . | docker import - lab/busybox >/dev/null
rm -rf "$d"
docker run -d --name web --restart always --security-opt apparmor=unconfined -p ` + fmt.Sprint(ContainerPort) + `:80 lab/busybox httpd -f -p 80 -h /www >/dev/null
`,
	Flood:  "printf '#!/bin/sh\\nexec yes piwall\\n' >/usr/local/bin/sudo && chmod 755 /usr/local/bin/sudo\n",
	Silent: "printf '#!/bin/sh\\nexec sleep 100000\\n' >/usr/local/bin/sudo && chmod 755 /usr/local/bin/sudo\n",
	StaleRules: `mkdir -p /etc/iptables
printf '*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n' >/etc/iptables/rules.v4
cp /etc/iptables/rules.v4 /etc/iptables/rules.v6
`,
}

// basePrologue installs what every profile has, without questions.
const basePrologue = `set -eu
export DEBIAN_FRONTEND=noninteractive
printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' 'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections
apt-get update -qq
`

// profileScript is the whole script of a profile.
func profileScript(p Profile) string {
	if slices.Contains(bareProfiles, p) {
		return "set -eu\n" + profileScripts[p]
	}
	pkgs := append([]string{"iptables", "netfilter-persistent", "iptables-persistent"}, profilePackages[p]...)
	return basePrologue + "apt-get install -y -qq --no-install-recommends " + strings.Join(pkgs, " ") + " </dev/null >/dev/null\n" + profileScripts[p]
}

// checkProfiles says what is wrong with cfg's profiles, or nil.
func (c *Config) checkProfiles() error {
	for name, p := range c.Profiles {
		if !slices.Contains(Profiles, p) {
			return fmt.Errorf("%s: no profile %q (the lab has %s)", name, p, profileList())
		}
		if n := piIndex(name); n < 1 || n > c.Pis {
			return fmt.Errorf("profile %s for %s: the lab has %s to %s", p, name, PiName(1), PiName(c.Pis))
		}
		if !c.Systemd && !slices.Contains(hostileProfiles, p) {
			return modules.WithHint(fmt.Errorf("profile %s for %s: profiles run on systemd Pis", p, name), "start the lab with --systemd")
		}
	}
	return nil
}

func profileList() string {
	var s []string
	for _, p := range Profiles {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

// piIndex is N of a name pi-NN, or 0.
func piIndex(name string) int {
	for i := 1; i <= MaxPis; i++ {
		if PiName(i) == name {
			return i
		}
	}
	return 0
}

// setUpProfile makes p its profile, over SSH as an operator would.
func (l *Lab) setUpProfile(ctx context.Context, p Pi) error {
	if _, err := l.Run(ctx, p, "sudo -n sh -c "+modules.Quote(profileScript(p.Profile))); err != nil {
		return fmt.Errorf("%s: setting up profile %s: %w", p.Name, p.Profile, err)
	}
	return nil
}

// FailLogins makes the intruder fail n SSH logins on p, as a scanner does:
// a user p does not have, and no key. It uses this machine's ssh client,
// run inside the intruder's namespace; a login refused outright (an
// address already banned) counts as failed.
func (l *Lab) FailLogins(ctx context.Context, p Pi, n int) error {
	for range n {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", intrNetns, "ssh", "-F", "/dev/null",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=3", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null",
			"nosuchuser@"+p.Addrs.V4.String(), "true")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return fmt.Errorf("%s: the intruder logged in: %s", p.Name, out)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
