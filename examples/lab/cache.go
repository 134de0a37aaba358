//go:build linux

package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/piwall/piwall/modules"
	"golang.org/x/sys/unix"
)

// The cache holds what every lab run shares and what is slow to make: one
// Debian bookworm root file system, the lower layer of every Pi, and the apt
// repository from which a Pi installs iptables with no network. It is built
// once (about a minute) and rebuilt only when the recipe below changes.

const debianMirror = "http://deb.debian.org/debian"

// basePackages are installed by debootstrap: sshd and sudo as on Raspberry Pi
// OS Lite, and systemd so that a Pi can also boot with systemd as PID 1.
// iptables is deliberately absent: a fresh Pi does not have it.
var basePackages = []string{"openssh-server", "iproute2", "sudo", "systemd", "systemd-sysv", "dbus", "libpam-systemd"}

// repoPackages, with every dependency the base lacks, make up the lab's apt
// repository: what piwall installs, what the profiles run, and what the
// tests install on a Pi (nftables, avahi and a DHCP client). ipset and
// ipset-persistent are what piwall installs for rules that match names.
var repoPackages = []string{"iptables", "netfilter-persistent", "iptables-persistent", "ipset", "ipset-persistent", "fail2ban", "python3-systemd", "docker.io", "busybox-static",
	"nftables", "avahi-daemon", "avahi-utils", "libnss-mdns", "isc-dhcp-client"}

// repoMount is where each Pi sees the apt repository (read-only).
const repoMount = "/opt/lab-repo"

// configureBase runs in a chroot of the fresh base, with the machine's
// network, and leaves the repository's packages in /lab-repo.
var configureBase = `set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
apt-get clean
apt-get update -qq
apt-get install -y -qq --no-install-recommends --download-only ` + strings.Join(repoPackages, " ") + ` >/dev/null
mkdir -p /lab-repo ` + repoMount + `
mv /var/cache/apt/archives/*.deb /lab-repo/
apt-get clean
rm -rf /var/lib/apt/lists/*
# Each Pi gets its own host key at start.
rm -f /etc/ssh/ssh_host_*
useradd --create-home --shell /bin/bash --uid 1000 --user-group pi
echo 'pi ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/010_pi-nopasswd
chmod 0440 /etc/sudoers.d/010_pi-nopasswd
echo 'deb [trusted=yes] file:` + repoMount + ` ./' >/etc/apt/sources.list
printf 'nameserver %s\nnameserver %s\n' ` + DNS.V4.String() + ` ` + DNS.V6.String() + ` >/etc/resolv.conf
cat >/etc/ssh/sshd_config.d/lab.conf <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
EOF
`

// recipe is everything the cache is made from; its digest names the build.
func recipe() string {
	return strings.Join([]string{"bookworm", debianMirror, strings.Join(basePackages, ","), configureBase}, "\n")
}

func recipeDigest() string {
	sum := sha256.Sum256([]byte(recipe()))
	return hex.EncodeToString(sum[:8])
}

type cache struct{ dir string }

func (c cache) base() string  { return filepath.Join(c.dir, "base") }
func (c cache) repo() string  { return filepath.Join(c.dir, "repo") }
func (c cache) stamp() string { return filepath.Join(c.dir, "recipe") }

// ensure builds the cache unless a build of the current recipe is there.
// Concurrent callers wait for each other.
func (c cache) ensure(ctx context.Context, log io.Writer) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(c.dir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if b, err := os.ReadFile(c.stamp()); err == nil && string(b) == recipeDigest() {
		return nil
	}
	fmt.Fprintf(log, "building the lab's Debian bookworm root file system in %s (once, about a minute)\n", c.dir)
	for _, d := range []string{c.base(), c.repo(), c.base() + ".new", c.repo() + ".new"} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	os.Remove(c.stamp())

	root, repo := c.base()+".new", c.repo()+".new"
	debootstrap := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(basePackages, ","), "bookworm", root, debianMirror)
	if err := run(debootstrap); err != nil {
		return modules.WithHint(fmt.Errorf("building the base file system: %w", err), "the machine needs the Debian mirror "+debianMirror)
	}
	// /proc is mounted in a private mount namespace of its own, so it is gone
	// with the command however the command ends.
	configure := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t proc proc "$1/proc" && cp /etc/resolv.conf "$1/etc/resolv.conf" && exec chroot "$1" sh -s`, "sh", root)
	configure.Stdin = strings.NewReader(configureBase)
	if err := run(configure); err != nil {
		return fmt.Errorf("configuring the base file system: %w", err)
	}
	if err := os.Rename(filepath.Join(root, "lab-repo"), repo); err != nil {
		return err
	}
	index := exec.CommandContext(ctx, "sh", "-c", "dpkg-scanpackages --multiversion . /dev/null 2>/dev/null | gzip -9 >Packages.gz")
	index.Dir = repo
	if err := run(index); err != nil {
		return fmt.Errorf("indexing the lab's apt repository: %w", err)
	}
	if err := os.Rename(root, c.base()); err != nil {
		return err
	}
	if err := os.Rename(repo, c.repo()); err != nil {
		return err
	}
	return os.WriteFile(c.stamp(), []byte(recipeDigest()), 0o644)
}

// lockFile takes an exclusive flock on path, waiting for it, and returns the
// function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
