package modules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// The scripts' harness runs the scripts of a run and the facts script as
// they run on a Pi, under dash, without root: a fakeHost is a temporary
// directory holding the host's state (its Paths) and a bin directory, the
// scripts' whole PATH, where testdata/fakehost/fake.sh stands in for
// iptables, apt and systemd, and this machine's own coreutils do the rest.
// A fake tool can fail, block or be slow (fake.sh says how). The commands
// are those the runner sends; a connection's sshd is a dash whose argv[0]
// is "sshd: pi@notty", as sshd names a session's process.
//
//	go test ./modules -run TestScript
//
// The lab (cmd/piwall's e2e tests) proves the same protocol against real
// sshd and iptables.

// hostTools are the firewall's tools, from apt: fake.sh under each name.
var hostTools = []string{
	"iptables", "ip6tables", "iptables-save", "ip6tables-save",
	"iptables-restore", "ip6tables-restore", "netfilter-persistent",
}

// systemTools are the rest of fake.sh's names: a Pi has them installed.
var systemTools = []string{"systemd-run", "systemctl", "apt-get", "debconf-set-selections", "sync", "dpkg-query", "getent"}

// realTools are what the scripts and fake.sh run of a host's own: linked
// from this machine.
var realTools = []string{
	"cat", "cp", "mv", "rm", "mkdir", "chmod", "sed", "tail", "tr", "cmp",
	"sha256sum", "date", "getconf", "setsid", "sleep", "pkill", "ln", "touch",
	"grep", "awk", "flock", "timeout", "sort", "cut", "tar",
}

// wrappedTools are real tools that fake.sh stands in front of, to make
// them fail where a test says.
var wrappedTools = []string{"cp", "tr", "tar"}

// The rulesets of the harness, in the canonical text piwall uploads.
const (
	acceptV4 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	acceptV6 = acceptV4
	oldV4    = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"
	oldV6    = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"
	newV4    = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -s 192.168.1.50/32 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
	newV6    = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
)

func digest(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// harnessConn is $SSH_CONNECTION on the fake host.
const harnessConn = "192.168.1.50 51234 192.168.1.11 22"

type fakeHost struct {
	t     *testing.T
	root  string // $FAKE_ROOT: fake.sh's state
	bin   string
	dash  string
	paths Paths
	// foreign declares others' rules for the changes of change: none
	// unless a test sets it.
	foreign *firewall.Foreign
}

// hostOpts say what the fake host has.
type hostOpts struct {
	bare    bool // no iptables or netfilter-persistent: a fresh Raspberry Pi OS Lite
	systemd bool // systemd is PID 1: the dead-man is a timer
}

func newFakeHost(t *testing.T, o hostOpts) *fakeHost {
	t.Helper()
	dash, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("the scripts' harness runs them under dash, the /bin/sh of Debian and Raspberry Pi OS: dash is not installed (hint: apt-get install dash)")
	}
	root := t.TempDir()
	h := &fakeHost{t: t, root: root, bin: filepath.Join(root, "bin"), dash: dash, paths: Paths{
		StateDir:   filepath.Join(root, "var/lib/piwall"),
		RulesDir:   filepath.Join(root, "etc/iptables"),
		UploadRoot: filepath.Join(root, "tmp"),
		PATH:       filepath.Join(root, "bin"),
		SystemdDir: filepath.Join(root, "run/systemd/system"),
		ResolvConf: filepath.Join(root, "etc/resolv.conf"),
		PolicyRCD:  filepath.Join(root, "usr/sbin/policy-rc.d"),
		PluginsDir: filepath.Join(root, "usr/share/netfilter-persistent/plugins.d"),
		UFWConf:    filepath.Join(root, "etc/ufw/ufw.conf"),
		Mountinfo:  filepath.Join(root, "proc/mountinfo"),
		Cmdline:    filepath.Join(root, "proc/cmdline"),
		UnitDir:    filepath.Join(root, "etc/systemd/system"),
	}}
	for _, d := range []string{"bin", "real", "timers", "fail", "block", "slow", "short", "tmp", "etc", "usr/sbin", "proc", "units", "sets", "dns", "etc/systemd/system", "usr/share/netfilter-persistent/plugins.d"} {
		mkdir(t, filepath.Join(root, d))
	}
	if o.systemd {
		mkdir(t, h.paths.SystemdDir)
	}
	for _, name := range []string{"fake.sh", "restore.awk"} {
		b, err := os.ReadFile(filepath.Join("testdata", "fakehost", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, name), string(b))
	}
	if err := os.Chmod(filepath.Join(root, "fake.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(h.bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	link(dash, "sh")
	for _, name := range realTools {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("the scripts' harness needs %s from this machine: %v", name, err)
		}
		if slices.Contains(wrappedTools, name) {
			if err := os.Symlink(p, filepath.Join(root, "real", name)); err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(root, "fake.sh")
		}
		link(p, name)
	}
	fakes := systemTools
	if !o.bare {
		fakes = append(slices.Clone(fakes), hostTools...)
		h.installed()
	}
	for _, name := range fakes {
		link(filepath.Join(root, "fake.sh"), name)
	}
	writeFile(t, h.paths.ResolvConf, "nameserver 192.168.1.1\n")
	// An SD card's ext4 root, booted as Raspberry Pi OS boots it.
	writeFile(t, h.paths.Mountinfo, "22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw\n")
	writeFile(t, h.paths.Cmdline, "console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait\n")
	t.Cleanup(h.stop)
	return h
}

// installed records iptables-persistent as installed: dpkg's status of
// its packages, its plugins and its service enabled (fake.sh's apt-get
// install does the same).
func (h *fakeHost) installed() {
	for _, p := range restorePackages {
		writeFile(h.t, filepath.Join(h.root, "dpkg", p), "ii\n")
	}
	for _, p := range restorePlugins {
		writeFile(h.t, filepath.Join(h.paths.PluginsDir, p), "#!/bin/sh\n")
		os.Chmod(filepath.Join(h.paths.PluginsDir, p), 0o755)
	}
	h.unit("netfilter-persistent", "enabled")
}

// unit sets what systemctl is-enabled says of a service ("" removes it).
func (h *fakeHost) unit(name, state string) {
	p := filepath.Join(h.root, "units", name+".service")
	if state == "" {
		os.Remove(p)
		return
	}
	writeFile(h.t, p, state+"\n")
}

// withRules is a fake host whose live rules are oldV4 and oldV6, of
// another tool or of an earlier run.
func withRules(t *testing.T, o hostOpts) *fakeHost {
	h := newFakeHost(t, o)
	h.setLive("v4", oldV4)
	h.setLive("v6", oldV6)
	return h
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// stop ends what a test left behind on the host: a blocked tool is let go,
// the appliers end, and a dead-man process still waiting is killed, by
// the pid it recorded, once /proc shows it is this host's.
func (h *fakeHost) stop() {
	os.RemoveAll(filepath.Join(h.root, "block"))
	runs, _ := filepath.Glob(filepath.Join(h.paths.StateDir, "runs", "*"))
	for _, dir := range runs {
		// apply.log is there once prepare started the applier.
		if _, err := os.Stat(filepath.Join(dir, "apply.log")); err == nil {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				st, _ := os.ReadFile(filepath.Join(dir, "status"))
				if s := strings.TrimSpace(string(st)); s != "" && s != "pending" && s != "applying" {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		dm, _ := os.ReadFile(filepath.Join(dir, "deadman"))
		pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(dm), "deadman=process ")))
		if err != nil || pid <= 1 {
			continue
		}
		if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); bytes.Contains(cmdline, []byte(dir+"/revert.sh")) {
			killGroup(pid)
		}
	}
}

func (h *fakeHost) env() []string {
	return []string{"FAKE_ROOT=" + h.root, "FAKE_RULES_DIR=" + h.paths.RulesDir, "FAKE_POLICY_RC_D=" + h.paths.PolicyRCD, "FAKE_PLUGINS_DIR=" + h.paths.PluginsDir, "PATH=" + h.bin, "HOME=" + h.root, "LC_ALL=C", "SSH_CONNECTION=" + harnessConn}
}

// result is how a command ended.
type result struct {
	stdout, stderr string
	code           int
}

func (h *fakeHost) run(cmd *exec.Cmd) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &errb, h.env()
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		h.t.Fatalf("%v: %v", cmd.Args, err)
	}
	return result{out.String(), errb.String(), code}
}

// login runs a command as a login shell does, in a session of an sshd
// process of its own.
func (h *fakeHost) login(command string) *exec.Cmd {
	// A command after it, so dash does not exec the last one in its place.
	return &exec.Cmd{Path: h.dash, Args: []string{"sshd: pi@notty", "-c", command + "; exit $?"}}
}

// setLive loads a family's rules as the kernel holds them; "" for tables
// never loaded.
func (h *fakeHost) setLive(fam, text string) {
	h.t.Helper()
	p := filepath.Join(h.root, "live."+fam)
	if text == "" {
		os.Remove(p)
		return
	}
	writeFile(h.t, p, text)
}

func (h *fakeHost) live(fam string) string {
	b, err := os.ReadFile(filepath.Join(h.root, "live."+fam))
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	return string(b)
}

// misbehave makes the fake tool of key fail (kind "fail", with text on
// stderr), wait while the file is there ("block") or sleep text seconds
// first ("slow").
func (h *fakeHost) misbehave(kind, key, text string) string {
	h.t.Helper()
	p := filepath.Join(h.root, kind, key)
	writeFile(h.t, p, text)
	return p
}

func (h *fakeHost) calls() []string {
	b, _ := os.ReadFile(filepath.Join(h.root, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (h *fakeHost) called(prefix string) bool {
	return slices.ContainsFunc(h.calls(), func(c string) bool { return strings.HasPrefix(c, prefix) })
}

func (h *fakeHost) file(path string) (string, bool) {
	b, err := os.ReadFile(path)
	return string(b), err == nil
}

// facts runs the facts script as the runner does and parses its output.
func (h *fakeHost) facts(req FactsRequest) *Facts {
	h.t.Helper()
	req.Paths = h.paths
	cmd := h.login(FactsCommand(false))
	cmd.Stdin = strings.NewReader(FactsScript(recordMarker, req))
	r := h.run(cmd)
	if r.code != 0 {
		h.t.Fatalf("facts: exit %d: %s", r.code, r.stderr)
	}
	f, err := ParseFacts(r.stdout, recordMarker)
	if err != nil {
		h.t.Fatalf("ParseFacts: %v\n%s", err, r.stdout)
	}
	return f
}

// change is a run of newV4 and newV6 planned against piwall's part of
// the host's live rules as its facts show them, as NewChangeSet makes one.
func (h *fakeHost) change(run string) *Change {
	f := h.facts(FactsRequest{})
	_, v4 := f.Own(firewall.IPv4, h.foreign)
	_, v6 := f.Own(firewall.IPv6, h.foreign)
	return &Change{
		Run: run, NewV4: newV4, NewV6: newV6, Foreign: h.foreign.Text(),
		RevertAfter: time.Minute, Install: f.NeedsIptables(), EnableRestore: f.Restore.disabled(),
		RulesInert: !f.Tools["netfilter-persistent"] || len(f.Restore.missing()) > 0 || f.Restore.disabled(),
		Operator:   "op@laptop", Source: "plan 0123abcd", Kind: "apply",
		ExpectV4: v4, ExpectV6: v6, Paths: h.paths,
	}
}

// prepare runs prepare's command as the runner does: the run's files on
// its stdin.
func (h *fakeHost) prepare(c *Change) result {
	h.t.Helper()
	return h.prepareWith(c, c.Archive())
}

// prepareWith runs prepare's command with data on its stdin in place of
// the run's archive.
func (h *fakeHost) prepareWith(c *Change, data []byte) result {
	h.t.Helper()
	cmd := h.login(c.PrepareCommand(false))
	cmd.Stdin = bytes.NewReader(data)
	return h.run(cmd)
}

// confirm runs confirm over a connection opened now.
func (h *fakeHost) confirm(c *Change) result {
	h.t.Helper()
	return h.run(h.login(c.ConfirmCommand(false, 0)))
}

func (h *fakeHost) status(c *Change) RunStatus {
	h.t.Helper()
	r := h.run(h.login(c.StatusCommand(false)))
	st, err := ParseStatus([]byte(r.stdout))
	if err != nil || r.code != 0 {
		h.t.Fatalf("status: exit %d, %v: %s", r.code, err, r.stderr)
	}
	return st
}

// waitStatus waits for the run's status file to say want.
func (h *fakeHost) waitStatus(c *Change, want Status, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	var st string
	for time.Now().Before(deadline) {
		st, _ = h.file(filepath.Join(c.RunDir(), "status"))
		if strings.TrimSpace(st) == string(want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("status %q after %v, want %q; apply.log: %s", strings.TrimSpace(st), within, want, h.log(c, "apply.log"))
}

func (h *fakeHost) log(c *Change, name string) string {
	s, _ := h.file(filepath.Join(c.RunDir(), name))
	return s
}

// fireTimer runs what the dead-man's systemd timer runs when it elapses.
func (h *fakeHost) fireTimer(c *Change) result {
	h.t.Helper()
	cmd, ok := h.file(filepath.Join(h.root, "timers", "piwall-revert-"+c.Run))
	if !ok {
		h.t.Fatalf("no timer piwall-revert-%s armed; calls: %q", c.Run, h.calls())
	}
	return h.run(&exec.Cmd{Path: h.dash, Args: []string{"sh", "-c", strings.TrimSpace(cmd)}})
}

// revert runs the dead-man's script as its timer or process would, armed
// or not: a timer that elapses as confirm disarms it.
func (h *fakeHost) revert(c *Change) result {
	h.t.Helper()
	return h.run(&exec.Cmd{Path: h.dash, Args: []string{"sh", filepath.Join(c.RunDir(), "revert.sh")}})
}

func (h *fakeHost) armed(c *Change) bool {
	_, ok := h.file(filepath.Join(h.root, "timers", "piwall-revert-"+c.Run))
	return ok
}

// lock is the lock file's text, and whether there is one.
func (h *fakeHost) lock() (string, bool) { return h.file(h.paths.lockFile()) }

// unchanged fails the test unless the host is as before a run that must
// not have changed anything: the live rules those given, nothing
// persisted, no lock, no dead-man armed.
func (h *fakeHost) unchanged(c *Change, v4, v6 string) {
	h.t.Helper()
	if got := h.live("v4"); got != v4 {
		h.t.Errorf("live v4 = %q, want %q", got, v4)
	}
	if got := h.live("v6"); got != v6 {
		h.t.Errorf("live v6 = %q, want %q", got, v6)
	}
	if l, held := h.lock(); held {
		h.t.Errorf("the lock is still held: %q", l)
	}
	if h.armed(c) {
		h.t.Error("a dead-man is armed")
	}
	for _, fam := range []string{"v4", "v6"} {
		if _, ok := h.file(h.paths.rules(fam)); ok {
			h.t.Errorf("%s was persisted", h.paths.rules(fam))
		}
	}
	if st, _ := h.file(filepath.Join(c.RunDir(), "status")); st != "" {
		h.t.Errorf("the applier ran: status %q", st)
	}
}
