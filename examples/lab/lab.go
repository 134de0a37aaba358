//go:build linux

package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/piwall/piwall/modules"
	"golang.org/x/crypto/ssh"
)

// Default places of the lab on the machine.
const (
	DefaultDir      = "/var/lib/piwall-lab"   // the running lab: keys, ssh_config, each Pi's writable layer
	DefaultCacheDir = "/var/cache/piwall-lab" // the base root file system and apt repository, kept between runs
)

// Config says which lab to start.
type Config struct {
	Pis      int       // how many Pis, 1 to MaxPis; 0 means 3
	Dir      string    // state directory; "" means DefaultDir
	CacheDir string    // cache directory; "" means DefaultCacheDir
	Log      io.Writer // progress lines; nil means none
	// Systemd boots every Pi with systemd as PID 1, as on a real Raspberry
	// Pi OS: systemd-run timers work and a Reboot restores persisted rules
	// through netfilter-persistent. Without it each Pi runs sshd alone.
	Systemd bool
	// Profiles give Pis, by name, a profile (systemd Pis only, but for
	// the hostile ones).
	Profiles map[string]Profile
	// RTT, when not 0, is the round-trip time on the way from the
	// controller to each Pi's sshd: the Pis are reached through relays
	// (see relay.go), and the operator's files say so.
	RTT time.Duration
}

// Lab is a running lab. Its description is kept in Dir/lab.json, so that
// another process (the piwall-lab command, a test) can Load it.
type Lab struct {
	Dir      string `json:"dir"`
	CacheDir string `json:"cache_dir"`
	Pis      []Pi   `json:"pis"`
	Services []Proc `json:"services"` // dnsmasq and the listeners
	Systemd  bool   `json:"systemd"`
	// RTT is the latency the relays put on the way to the Pis (0: none,
	// the Pis are reached on the lab bridge).
	RTT time.Duration `json:"rtt,omitempty"`
	// Cgroups is where the Pis' cgroups are (systemd Pis only).
	Cgroups string `json:"cgroups,omitempty"`
}

// Pi is one lab Pi.
type Pi struct {
	Name    string  `json:"name"`     // label and hostname: pi-01
	Netns   string  `json:"netns"`    // its network namespace: pwl-pi-01
	Addrs   Addrs   `json:"addrs"`    // its addresses on the lab bridge
	HostKey string  `json:"host_key"` // its ssh host key, in authorized_keys form
	Init    Proc    `json:"init"`     // PID 1 of the Pi
	Profile Profile `json:"profile,omitempty"`
}

// Files an operator needs to reach the Pis, in the lab's directory.
func (l *Lab) SSHConfig() string  { return filepath.Join(l.Dir, "ssh_config") }
func (l *Lab) KnownHosts() string { return filepath.Join(l.Dir, "known_hosts") }
func (l *Lab) Key() string        { return filepath.Join(l.Dir, "id_ed25519") }
func (l *Lab) Plan() string       { return filepath.Join(l.Dir, "site.hcl") }

func (c *Config) defaults() {
	if c.Pis == 0 {
		c.Pis = 3
	}
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// hostTools are the machine's programs the lab runs, with the Debian package
// of each.
var hostTools = map[string]string{
	"ip": "iproute2", "unshare": "util-linux", "debootstrap": "debootstrap",
	"dpkg-scanpackages": "dpkg-dev", "dnsmasq": "dnsmasq-base", "gzip": "gzip",
}

// Check says what this machine lacks to run the lab, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return modules.WithHint(errors.New("the lab needs root: it makes network namespaces, mounts and processes of its own"), "run it as root (sudo)")
	}
	var pkgs []string
	for tool, pkg := range hostTools {
		if _, err := exec.LookPath(tool); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) > 0 {
		return modules.WithHint(errors.New("the lab needs programs this machine lacks"), "apt-get install -y "+strings.Join(pkgs, " "))
	}
	return nil
}

// Up starts a lab: it first clears whatever an earlier lab left on the
// machine, builds the cache if needed, then makes the network, starts the
// services and the Pis, and writes ssh_config, known_hosts, the lab key and
// site.hcl into cfg.Dir. On failure it tears down what it started.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	cfg.defaults()
	if cfg.Pis < 1 || cfg.Pis > MaxPis {
		return nil, fmt.Errorf("a lab has 1 to %d Pis, not %d", MaxPis, cfg.Pis)
	}
	if err := cfg.checkProfiles(); err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	if err := Down(ctx, cfg.Dir); err != nil {
		return nil, fmt.Errorf("clearing an earlier lab: %w", err)
	}
	c := cache{cfg.CacheDir}
	if err := c.ensure(ctx, cfg.Log); err != nil {
		return nil, fmt.Errorf("lab cache: %w", err)
	}
	l := &Lab{Dir: cfg.Dir, CacheDir: cfg.CacheDir, Systemd: cfg.Systemd, RTT: cfg.RTT}
	if err := l.up(ctx, cfg); err != nil {
		if derr := Down(context.WithoutCancel(ctx), cfg.Dir); derr != nil {
			err = fmt.Errorf("%w; and tearing down the partial lab: %v", err, derr)
		}
		return nil, err
	}
	return l, nil
}

func (l *Lab) up(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	labKey, err := writeKey(l.Key())
	if err != nil {
		return err
	}
	nodes := []node{
		{netns: svcNetns, addrs: serviceAddrs()},
		{netns: intrNetns, addrs: []netip.Addr{Intruder.V4, Intruder.V6}},
	}
	for i := 1; i <= cfg.Pis; i++ {
		a := PiAddrs(i)
		l.Pis = append(l.Pis, Pi{Name: PiName(i), Netns: Prefix + PiName(i), Addrs: a, Profile: cfg.Profiles[PiName(i)]})
		nodes = append(nodes, node{netns: Prefix + PiName(i), addrs: []netip.Addr{a.V4, a.V6}})
	}
	fmt.Fprintf(cfg.Log, "making the lab network: bridge %s, %d namespaces\n", bridgeName, len(nodes))
	if err := makeNetwork(ctx, nodes); err != nil {
		return err
	}
	if err := enableNetnsLog(); err != nil {
		return err
	}
	procs, err := startServices(ctx, cfg.Pis, l.Dir)
	l.Services = procs
	if serr := l.save(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if l.Systemd {
		if l.Cgroups, err = cgroupRoot(); err != nil {
			return err
		}
	}
	fmt.Fprintf(cfg.Log, "starting %d Pis\n", cfg.Pis)
	for i := range l.Pis {
		if err := l.startPi(ctx, &l.Pis[i], labKey); err != nil {
			l.save()
			return err
		}
	}
	if err := l.save(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(l.Pis))
	for i, p := range l.Pis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = waitSSH(ctx, p, filepath.Join(l.Dir, p.Name, "console.log"))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if l.RTT > 0 {
		relay, err := startRelays(l.RTT, l.Pis, l.Dir)
		if err != nil {
			return err
		}
		l.Services = append(l.Services, relay)
		if err := l.save(); err != nil {
			return err
		}
	}
	if err := l.writeOperatorFiles(); err != nil {
		return err
	}
	for i, p := range l.Pis {
		if p.Profile == "" {
			continue
		}
		fmt.Fprintf(cfg.Log, "%s: setting up profile %s\n", p.Name, p.Profile)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.setUpProfile(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startPi prepares a Pi's writable layer and seed files and starts its init.
func (l *Lab) startPi(ctx context.Context, p *Pi, labKey ssh.PublicKey) error {
	dir := filepath.Join(l.Dir, p.Name)
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	hostKey, err := newKey("root@" + p.Name)
	if err != nil {
		return err
	}
	p.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey.pub)))
	spec := piSpec{
		Hostname: p.Name,
		Lower:    cache{l.CacheDir}.base(),
		Upper:    filepath.Join(dir, "upper"),
		Work:     filepath.Join(dir, "work"),
		Root:     filepath.Join(dir, "root"),
		Repo:     cache{l.CacheDir}.repo(),
		Console:  filepath.Join(dir, "console.log"),
		Files: []seedFile{
			{Path: "/etc/hostname", Mode: 0o644, Data: p.Name + "\n"},
			{Path: "/etc/hosts", Mode: 0o644, Data: fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n", p.Name)},
			{Path: "/etc/ssh/ssh_host_ed25519_key", Mode: 0o600, Data: string(hostKey.private)},
			{Path: "/etc/ssh/ssh_host_ed25519_key.pub", Mode: 0o644, Data: p.HostKey + "\n"},
			{Path: "/home/pi/.ssh", Mode: 0o700, UID: 1000, GID: 1000, Dir: true},
			{Path: "/home/pi/.ssh/authorized_keys", Mode: 0o600, UID: 1000, GID: 1000, Data: string(ssh.MarshalAuthorizedKey(labKey))},
		},
	}
	if l.Systemd {
		spec.Systemd = true
		spec.Cgroup = filepath.Join(l.Cgroups, p.Name)
		if err := os.MkdirAll(spec.Cgroup, 0o755); err != nil {
			return fmt.Errorf("%s: making its cgroup: %w", p.Name, err)
		}
		// Timers that would run apt inside the lab, and hold its lock when
		// piwall installs iptables; and a getty for a console the Pi lacks.
		for _, unit := range []string{"apt-daily.timer", "apt-daily-upgrade.timer", "console-getty.service"} {
			spec.Files = append(spec.Files, seedFile{Path: "/etc/systemd/system/" + unit, Link: "/dev/null"})
		}
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		return err
	}
	p.Init, err = startPi(ctx, p.Netns, specPath, filepath.Join(dir, "console.log"), spec)
	return err
}

// waitSSH waits until the Pi's sshd greets.
func waitSSH(ctx context.Context, p Pi, console string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	addr := net.JoinHostPort(p.Addrs.V4.String(), "22")
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			_, err = io.ReadFull(c, buf)
			c.Close()
			if err == nil && string(buf) == "SSH-2.0-" {
				return nil
			}
		}
		if !p.Init.alive() {
			return fmt.Errorf("%s: its init exited (see %s)", p.Name, console)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: sshd did not answer on %s: %v (see %s)", p.Name, addr, err, console)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.Dir, "lab.json"), b, 0o644)
}

// Load reads the description of the lab running from dir.
func Load(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, modules.WithHint(fmt.Errorf("no lab is up in %s", dir), "piwall-lab up")
		}
		return nil, err
	}
	var l Lab
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("reading %s/lab.json: %w", dir, err)
	}
	return &l, nil
}

// Down stops the lab described in dir and clears anything a lab left on
// this machine: every process in a namespace of the lab, the links, the
// namespaces, the kernel's nf_log_all_netns as it was before the lab, then
// the state directory. It is safe when nothing is up.
func Down(ctx context.Context, dir string) error {
	var procs []Proc
	if l, err := Load(dir); err == nil {
		procs = append(procs, l.Services...)
		for _, p := range l.Pis {
			procs = append(procs, p.Init)
		}
	}
	namespaces, err := labNetns(ctx)
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		pids, err := netnsPids(ctx, ns)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if p, err := procOf(pid); err == nil {
				procs = append(procs, p)
			}
		}
	}
	for _, p := range procs {
		p.kill()
	}
	if err := waitGone(procs, 10*time.Second); err != nil {
		return err
	}
	if err := removeCgroups(); err != nil {
		return err
	}
	// The host side of each veth goes before its namespace (deleting one end
	// deletes the other), then the bridge, then the namespaces.
	links, err := labLinks(ctx)
	if err != nil {
		return err
	}
	var batch strings.Builder
	for _, name := range links {
		if name != bridgeName {
			fmt.Fprintf(&batch, "link del %s\n", name)
		}
	}
	for _, name := range links {
		if name == bridgeName {
			fmt.Fprintf(&batch, "link del %s\n", name)
		}
	}
	for _, ns := range namespaces {
		fmt.Fprintf(&batch, "netns del %s\n", ns)
	}
	if batch.Len() > 0 {
		cmd := exec.CommandContext(ctx, "ip", "-batch", "-")
		cmd.Stdin = strings.NewReader(batch.String())
		if err := run(cmd); err != nil {
			return fmt.Errorf("removing the lab network: %w", err)
		}
	}
	if err := restoreNetnsLog(); err != nil {
		return err
	}
	if err := mountedUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// mountedUnder refuses to go on when anything is mounted below dir in this
// mount namespace: removing the directory would then remove what is mounted.
func mountedUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == abs || strings.HasPrefix(f[4], abs+"/")) {
			return modules.WithHint(fmt.Errorf("%s is still mounted; not removing %s", f[4], dir), "umount it")
		}
	}
	return nil
}

type key struct {
	pub     ssh.PublicKey
	private []byte // OpenSSH PEM
}

func newKey(comment string) (key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return key{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return key{}, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return key{}, err
	}
	return key{pub: sshPub, private: pem.EncodeToMemory(block)}, nil
}

// writeKey makes the lab's operator key at path (and path.pub).
func writeKey(path string) (ssh.PublicKey, error) {
	k, err := newKey("piwall-lab operator")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, k.private, 0o600); err != nil {
		return nil, err
	}
	return k.pub, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(k.pub), 0o644)
}
