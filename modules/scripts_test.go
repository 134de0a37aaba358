package modules

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// The protocol's branches, one case each, run by the scripts' harness
// (harness_test.go).

// TestScriptApplyConfirm: a Pi with iptables and rules of its own but
// nothing of piwall's takes the new rules, confirmed over a new
// connection: they are persisted, recorded as generation 2 after the rules
// found (1), the dead-man disarmed and the lock released.
func TestScriptApplyConfirm(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c := h.change("a1")
	if c.Install {
		t.Fatal("a Pi with iptables and netfilter-persistent needs them installed")
	}
	r := h.prepare(c)
	if r.code != 0 {
		t.Fatalf("prepare: exit %d: %s", r.code, r.stderr)
	}
	rep, err := ParsePrepare([]byte(r.stdout))
	if err != nil || rep.DeadMan != DeadManSystemd || rep.Installed || rep.StaleLock != "" {
		t.Fatalf("prepare said %+v, %v: %q", rep, err, r.stdout)
	}
	if !h.armed(c) {
		t.Fatal("no dead-man timer armed")
	}
	if _, ok := h.file(c.UploadDir()); ok {
		t.Error("the upload directory is still there")
	}
	h.waitStatus(c, StatusApplied, 5*time.Second)
	if h.live("v4") != newV4 || h.live("v6") != newV6 {
		t.Fatalf("live rules after the applier: %q %q", h.live("v4"), h.live("v6"))
	}
	r = h.confirm(c)
	if r.code != 0 {
		t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
	}
	gen, err := ParseConfirm([]byte(r.stdout))
	if err != nil || gen != 2 {
		t.Fatalf("confirm recorded generation %d, %v; want 2", gen, err)
	}
	for fam, want := range map[string]string{"v4": newV4, "v6": newV6} {
		if got, _ := h.file(h.paths.rules(fam)); got != want {
			t.Errorf("persisted %s = %q, want the new rules", fam, got)
		}
	}
	if h.armed(c) {
		t.Error("the dead-man timer is still armed")
	}
	if l, held := h.lock(); held {
		t.Errorf("the lock is still held: %q", l)
	}
	if st := h.status(c); st.Status != StatusConfirmed || st.LiveIsSaved {
		t.Errorf("status = %+v, want confirmed and the new rules live", st)
	}
	// The generations: the rules found, then the new ones.
	f := h.facts(FactsRequest{History: true, Rollback: Previous})
	if f.Generation != 2 || len(f.History) != 2 {
		t.Fatalf("facts: generation %d, history %+v", f.Generation, f.History)
	}
	if g := f.History[0]; g.Number != 1 || g.Kind != "found" || g.Outcome != "replaced" || g.Run != "a1" {
		t.Errorf("generation 1 = %+v, want the rules found, replaced by a1", g)
	}
	if g := f.History[1]; g.Number != 2 || g.Kind != "apply" || g.Outcome != "applied" || g.Source != c.Source || g.Operator != c.Operator {
		t.Errorf("generation 2 = %+v, want a1's apply", g)
	}
	if rb := f.RollbackTo; rb == nil || rb.Number != 1 || !rb.Found || rb.V4 != oldV4 || rb.V6 != oldV6 {
		t.Errorf("rollback_to previous = %+v, want generation 1, the rules found", rb)
	}
	if f.Persisted[firewall.IPv4] != digest(newV4) || f.Persisted[firewall.IPv6] != digest(newV6) {
		t.Errorf("facts: persisted %v, want the new rules' digests", f.Persisted)
	}
	// The dead-man, were it to fire now, does nothing.
	if r := h.revert(c); r.code != 0 || h.live("v4") != newV4 {
		t.Errorf("a disarmed revert: exit %d, live v4 %q", r.code, h.live("v4"))
	}
}

// prepared runs prepare for a new change and fails the test unless it
// started the applier.
func prepared(t *testing.T, h *fakeHost, run string) (*Change, PrepareReport) {
	t.Helper()
	c := h.change(run)
	return c, prepareChange(t, h, c)
}

// prepareChange runs prepare of c and fails the test unless it succeeded.
func prepareChange(t *testing.T, h *fakeHost, c *Change) PrepareReport {
	t.Helper()
	r := h.prepare(c)
	rep, err := ParsePrepare([]byte(r.stdout))
	if r.code != 0 || err != nil {
		t.Fatalf("prepare: exit %d, %v: %s%s", r.code, err, r.stdout, r.stderr)
	}
	return rep
}

// confirmed runs a change through prepare, the applier and confirm, and
// fails the test unless it was confirmed.
func confirmed(t *testing.T, h *fakeHost, run string) *Change {
	t.Helper()
	c := h.change(run)
	confirmChange(t, h, c)
	return c
}

// confirmChange runs c through prepare, the applier and confirm, and
// fails the test unless it was confirmed.
func confirmChange(t *testing.T, h *fakeHost, c *Change) {
	t.Helper()
	prepareChange(t, h, c)
	h.waitStatus(c, StatusApplied, 5*time.Second)
	if r := h.confirm(c); r.code != 0 {
		t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
	}
}

// TestScriptSecondRun: on a host piwall provisioned, the rules replaced are
// the current generation already: no "found" generation, the next is 3.
// A revert of that run puts the persisted files back as they were.
func TestScriptSecondRun(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	confirmed(t, h, "b1")

	c2 := h.change("b2")
	c2.NewV4 = strings.Replace(newV4, "COMMIT", "-A INPUT -p icmp -j ACCEPT\nCOMMIT", 1)
	if r := h.prepare(c2); r.code != 0 {
		t.Fatalf("second prepare: exit %d: %s", r.code, r.stderr)
	}
	h.waitStatus(c2, StatusApplied, 5*time.Second)
	r := h.confirm(c2)
	if gen, err := ParseConfirm([]byte(r.stdout)); err != nil || gen != 3 {
		t.Fatalf("second confirm recorded generation %d, %v: %s; want 3", gen, err, r.stderr)
	}
	if f := h.facts(FactsRequest{History: true}); len(f.History) != 3 || f.History[2].Run != "b2" {
		t.Errorf("history %+v, want generations 1 to 3, the last b2's", f.History)
	}

	c3 := h.change("b3")
	c3.NewV4 = acceptV4
	if r := h.prepare(c3); r.code != 0 {
		t.Fatalf("third prepare: exit %d: %s", r.code, r.stderr)
	}
	h.waitStatus(c3, StatusApplied, 5*time.Second)
	if r := h.fireTimer(c3); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	if got := h.live("v4"); got != c2.NewV4 {
		t.Errorf("live v4 after the revert = %q, want b2's", got)
	}
	if got, _ := h.file(h.paths.rules("v4")); got != c2.NewV4 {
		t.Errorf("persisted v4 after the revert = %q, want b2's", got)
	}
	if st := h.status(c3); st.Status != StatusReverted || !st.LiveIsSaved {
		t.Errorf("status = %+v, want reverted with the saved rules live", st)
	}
	if f := h.facts(FactsRequest{}); f.Generation != 3 || f.Lock != nil {
		t.Errorf("after the revert: generation %d, lock %+v; want 3 and none", f.Generation, f.Lock)
	}
}

// TestScriptFreshPi: a fresh Raspberry Pi OS Lite has no iptables: prepare
// installs it without questions, and saves an explicit all-ACCEPT ruleset
// for the dead-man, since there were no tables to save.
func TestScriptFreshPi(t *testing.T) {
	h := newFakeHost(t, hostOpts{bare: true, systemd: true})
	f := h.facts(FactsRequest{})
	if !f.NeedsIptables() || f.Generation != 0 || f.Lock != nil || f.Persisted[firewall.IPv4] != "none" {
		t.Fatalf("facts of a fresh Pi: needs iptables %v, generation %d, lock %+v, persisted %v",
			f.NeedsIptables(), f.Generation, f.Lock, f.Persisted)
	}
	c, rep := prepared(t, h, "c1")
	if !c.Install || !rep.Installed {
		t.Fatalf("install %v, prepare said %+v", c.Install, rep)
	}
	sel, _ := h.file(filepath.Join(h.root, "debconf"))
	if !strings.Contains(sel, "autosave_v4 boolean false") || !strings.Contains(sel, "autosave_v6 boolean false") {
		t.Errorf("debconf selections %q: iptables-persistent would ask, or save the rules itself", sel)
	}
	if !h.called("apt-get -o DPkg::Lock::Timeout=60 update") || !h.called("apt-get -o DPkg::Lock::Timeout=60 install -y -qq --reinstall iptables netfilter-persistent iptables-persistent") {
		t.Errorf("calls %q", h.calls())
	}
	for fam, want := range map[string]string{"v4": acceptV4, "v6": acceptV6} {
		if got := h.log(c, "saved."+fam); got != want {
			t.Errorf("saved.%s = %q, want all-ACCEPT", fam, got)
		}
	}
	h.waitStatus(c, StatusApplied, 5*time.Second)
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	if h.live("v4") != acceptV4 || h.live("v6") != acceptV6 {
		t.Errorf("after the revert: live %q, %q; want all-ACCEPT", h.live("v4"), h.live("v6"))
	}
}

// TestScriptStaleRulesBeforeInstall: rules files left on a Pi without
// netfilter-persistent (a removed package, an image) never go live
// unprotected: the package's postinst may not start its service while
// piwall installs it, and the files are set aside, so that neither that
// start nor the next boot loads them. A failed install puts them back.
func TestScriptStaleRulesBeforeInstall(t *testing.T) {
	const stale = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n"
	setUp := func(t *testing.T) *fakeHost {
		h := newFakeHost(t, hostOpts{bare: true, systemd: true})
		mkdir(t, h.paths.RulesDir)
		writeFile(t, h.paths.rules("v4"), stale)
		return h
	}
	t.Run("installed", func(t *testing.T) {
		h := setUp(t)
		c, rep := prepared(t, h, "s1")
		aside := h.paths.rules("v4") + ".before-piwall-s1"
		if want := []string{h.paths.rules("v4") + " → " + aside}; !slices.Equal(rep.SetAside, want) {
			t.Errorf("prepare set aside %q, want %q", rep.SetAside, want)
		}
		if h.called("netfilter-persistent start") {
			t.Error("the package's postinst started netfilter-persistent while piwall installed it")
		}
		if got := h.log(c, "saved.v4"); got != acceptV4 {
			t.Errorf("the dead-man's saved rules are %q, want the kernel's all-ACCEPT", got)
		}
		if got, _ := h.file(aside); got != stale {
			t.Errorf("%s holds %q, want the stale file", aside, got)
		}
		if _, err := os.Stat(h.paths.PolicyRCD); err == nil {
			t.Error("prepare left its policy-rc.d behind")
		}
		h.waitStatus(c, StatusApplied, 5*time.Second)
		if r := h.fireTimer(c); r.code != 0 {
			t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
		}
		// Reverted: open, as before, and nothing for the boot to load.
		if h.live("v4") != acceptV4 {
			t.Errorf("after the revert: live %q, want all-ACCEPT", h.live("v4"))
		}
		if got, ok := h.file(h.paths.rules("v4")); ok {
			t.Errorf("after the revert, the boot would load %q", got)
		}
	})
	t.Run("the install fails", func(t *testing.T) {
		h := setUp(t)
		h.misbehave("fail", "apt-get install", "E: Unable to fetch some archives")
		c := h.change("s2")
		if r := h.prepare(c); r.code != 1 {
			t.Fatalf("prepare: exit %d, want 1", r.code)
		}
		if got, _ := h.file(h.paths.rules("v4")); got != stale {
			t.Errorf("rules.v4 = %q, want the file as it was", got)
		}
		if _, err := os.Stat(h.paths.PolicyRCD); err == nil {
			t.Error("prepare left its policy-rc.d behind")
		}
	})
	t.Run("installed, then refused", func(t *testing.T) {
		// netfilter-persistent is on the host now, enabled: the stale file
		// must not come back for the next boot to load.
		h := setUp(t)
		h.misbehave("fail", "iptables-restore--test", "iptables-restore: line 3 failed")
		c := h.change("s4")
		if r := h.prepare(c); r.code != ExitTestFailed {
			t.Fatalf("prepare: exit %d, want %d", r.code, ExitTestFailed)
		}
		if _, ok := h.file(h.paths.rules("v4")); ok {
			t.Error("the stale rules.v4 is back, with netfilter-persistent installed to load it")
		}
		if got, _ := h.file(h.paths.rules("v4") + ".before-piwall-s4"); got != stale {
			t.Errorf("the set-aside file holds %q", got)
		}
	})
	t.Run("a policy-rc.d a killed piwall left", func(t *testing.T) {
		h := setUp(t)
		writeFile(t, h.paths.PolicyRCD, "#!/bin/sh\n# piwall: no service starts while it installs iptables\nexit 101\n")
		c, _ := prepared(t, h, "s5")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		if _, err := os.Stat(h.paths.PolicyRCD); err == nil {
			t.Error("the policy-rc.d piwall left is still there")
		}
	})
	t.Run("the host's own policy-rc.d", func(t *testing.T) {
		h := setUp(t)
		const own = "#!/bin/sh\n# the image's own\nexit 101\n"
		writeFile(t, h.paths.PolicyRCD, own)
		os.Chmod(h.paths.PolicyRCD, 0o755)
		c, _ := prepared(t, h, "s3")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		if got, _ := h.file(h.paths.PolicyRCD); got != own {
			t.Errorf("policy-rc.d = %q, want the host's own untouched", got)
		}
	})
}

// TestScriptInstallFails: apt failing stops prepare before anything is
// saved or armed, with apt's words and the lock released.
func TestScriptInstallFails(t *testing.T) {
	for _, key := range []string{"apt-get update", "apt-get install"} {
		t.Run(key, func(t *testing.T) {
			h := newFakeHost(t, hostOpts{bare: true, systemd: true})
			h.misbehave("fail", key, "E: Could not get lock /var/lib/dpkg/lock-frontend")
			c := h.change("d1")
			r := h.prepare(c)
			if r.code != 1 || !strings.Contains(r.stderr, "Could not get lock") || !strings.Contains(r.stderr, "failed") {
				t.Errorf("prepare: exit %d, stderr %q", r.code, r.stderr)
			}
			h.unchanged(c, "", "")
		})
	}
}

// TestScriptLock: a lock held is respected, a lock past its expiry is
// taken over and said so.
func TestScriptLock(t *testing.T) {
	lockText := func(expires time.Time) string {
		return "run=ff00\noperator=bob@ops\nsince=1764061200\nexpires=" + strconv.FormatInt(expires.Unix(), 10) + "\n"
	}
	t.Run("held", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		held := lockText(time.Now().Add(time.Hour))
		mkdir(t, h.paths.StateDir)
		writeFile(t, h.paths.lockFile(), held)
		if f := h.facts(FactsRequest{}); f.Lock == nil || f.Lock.Run != "ff00" || f.Lock.Operator != "bob@ops" {
			t.Errorf("facts: lock %+v, want ff00's", f.Lock)
		}
		c := h.change("e1")
		r := h.prepare(c)
		if r.code != ExitLocked || !strings.Contains(r.stderr, "locked by: run=ff00 operator=bob@ops") {
			t.Errorf("prepare: exit %d, stderr %q; want %d and who holds it", r.code, r.stderr, ExitLocked)
		}
		if l, _ := h.lock(); l != held {
			t.Errorf("the lock is now %q, want ff00's untouched", l)
		}
		if h.armed(c) || h.live("v4") != oldV4 {
			t.Error("prepare went on past a held lock")
		}
	})
	t.Run("stale", func(t *testing.T) {
		h := newFakeHost(t, hostOpts{systemd: true})
		mkdir(t, h.paths.StateDir)
		writeFile(t, h.paths.lockFile(), lockText(time.Now().Add(-time.Minute)))
		c, rep := prepared(t, h, "e2")
		if !strings.HasPrefix(rep.StaleLock, "run=ff00 operator=bob@ops since=1764061200 expires=") {
			t.Errorf("prepare said stale lock %q, want ff00's", rep.StaleLock)
		}
		if l, _ := h.lock(); !strings.HasPrefix(l, "run=e2\noperator=op@laptop\n") {
			t.Errorf("the lock is %q, want e2's", l)
		}
		h.waitStatus(c, StatusApplied, 5*time.Second)
	})
	// Locks as prepare writes them: expiry on the boot clock.
	boot, up := bootClock(t)
	bootLock := func(boot string, until int) string {
		return fmt.Sprintf("run=ff00\noperator=bob@ops\nsince=1764061200\nexpires=%d\nboot=%s\nuntil=%d\n", time.Now().Add(time.Hour).Unix(), boot, until)
	}
	t.Run("a wall-clock jump does not expire it", func(t *testing.T) {
		// A Pi without an RTC steps its clock at the first NTP sync.
		h := withRules(t, hostOpts{systemd: true})
		held := bootLock(boot, up+3600)
		mkdir(t, h.paths.StateDir)
		writeFile(t, h.paths.lockFile(), held)
		jumped := filepath.Join(h.bin, "date")
		os.Remove(jumped)
		writeFile(t, jumped, fmt.Sprintf("#!/bin/sh\necho %d\n", time.Now().AddDate(1, 0, 0).Unix()))
		os.Chmod(jumped, 0o755)
		c := h.change("e3")
		if r := h.prepare(c); r.code != ExitLocked {
			t.Errorf("prepare: exit %d, stderr %q; want %d", r.code, r.stderr, ExitLocked)
		}
		if l, _ := h.lock(); l != held {
			t.Errorf("the lock is now %q, want ff00's untouched", l)
		}
	})
	t.Run("expired on the boot clock", func(t *testing.T) {
		h := newFakeHost(t, hostOpts{systemd: true})
		mkdir(t, h.paths.StateDir)
		writeFile(t, h.paths.lockFile(), bootLock(boot, up-5))
		if _, rep := prepared(t, h, "e4"); !strings.HasPrefix(rep.StaleLock, "run=ff00 ") {
			t.Errorf("prepare said stale lock %q, want ff00's", rep.StaleLock)
		}
	})
	t.Run("left by an earlier boot", func(t *testing.T) {
		// The Pi rebooted while armed: its dead-man timer and its run died
		// with the boot, and nothing else will release the lock.
		h := newFakeHost(t, hostOpts{systemd: true})
		mkdir(t, h.paths.StateDir)
		writeFile(t, h.paths.lockFile(), bootLock("0badb007-0000-4000-8000-000000000000", up+3600))
		c, rep := prepared(t, h, "e5")
		if !strings.HasPrefix(rep.StaleLock, "run=ff00 ") {
			t.Errorf("prepare said stale lock %q, want ff00's", rep.StaleLock)
		}
		if l, _ := h.lock(); !strings.Contains(l, "run=e5\n") || !strings.Contains(l, "boot="+boot+"\n") {
			t.Errorf("the lock is %q, want e5's of this boot", l)
		}
		h.waitStatus(c, StatusApplied, 5*time.Second)
	})
	t.Run("seen stale by two runs at once", func(t *testing.T) {
		// Both find the lock stale; the second judges it while the first
		// is taking it over (tr, slowed, is in between).
		h := withRules(t, hostOpts{systemd: true})
		mkdir(t, h.paths.StateDir)
		writeFile(t, h.paths.lockFile(), lockText(time.Now().Add(-time.Minute)))
		h.misbehave("slow", "tr", "0.5")
		first, second := h.change("e6"), h.change("e7")
		var wg sync.WaitGroup
		results := make([]result, 2)
		for i, c := range []*Change{first, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * 250 * time.Millisecond)
				results[i] = h.prepare(c)
			}()
		}
		wg.Wait()
		if results[0].code != 0 || results[1].code != ExitLocked {
			t.Errorf("prepare: exits %d and %d, want 0 and %d (the second sees the first's lock)\n%s\n%s",
				results[0].code, results[1].code, ExitLocked, results[0].stderr, results[1].stderr)
		}
		if l, _ := h.lock(); !strings.Contains(l, "run=e6\n") {
			t.Errorf("the lock is %q, want e6's", l)
		}
		if h.armed(second) {
			t.Error("the second run armed a dead-man too")
		}
	})
}

// bootClock is this machine's boot id and whole seconds of uptime: the
// harness's scripts read them from /proc.
func bootClock(t *testing.T) (string, int) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skipf("no boot id: %v", err)
	}
	u, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Skipf("no uptime: %v", err)
	}
	secs, _, _ := strings.Cut(string(u), ".")
	n, err := strconv.Atoi(secs)
	if err != nil {
		t.Fatalf("/proc/uptime: %q", u)
	}
	return strings.TrimSpace(string(b)), n
}

// TestScriptRefusals: prepare refuses, and changes nothing, when the
// rules changed since the plan, when an uploaded file is not what piwall
// sent, and when the kernel's test refuses the new rules.
func TestScriptRefusals(t *testing.T) {
	cases := []struct {
		name   string
		before func(h *fakeHost, c *Change)
		code   int
		says   string
	}{
		{"IPv4 drift", func(h *fakeHost, c *Change) {
			h.setLive("v4", strings.Replace(oldV4, "COMMIT", "-A INPUT -s 10.9.9.9/32 -j DROP\nCOMMIT", 1))
		}, ExitDrift, "the IPv4 rules changed since the plan"},
		{"IPv6 drift", func(h *fakeHost, c *Change) { h.setLive("v6", acceptV6) }, ExitDrift, "the IPv6 rules changed since the plan"},
		{"checksum", nil, 1, "the uploaded files do not match their checksums"},
		{"IPv4 test", func(h *fakeHost, c *Change) {
			h.misbehave("fail", "iptables-restore--test", "iptables-restore: line 4 failed")
		}, ExitTestFailed, "iptables-restore --test refused the IPv4 rules"},
		{"IPv6 test", func(h *fakeHost, c *Change) {
			h.misbehave("fail", "ip6tables-restore--test", "ip6tables-restore: line 5 failed")
		}, ExitTestFailed, "ip6tables-restore --test refused the IPv6 rules"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := withRules(t, hostOpts{systemd: true})
			c := h.change("f1")
			v4, v6 := h.live("v4"), h.live("v6")
			var r result
			if tc.before == nil {
				// The checksum case: a file arrives other than sent.
				files := c.Files()
				files["new.v4"] = []byte(acceptV4)
				r = h.prepareWith(c, archive(files))
			} else {
				tc.before(h, c)
				v4, v6 = h.live("v4"), h.live("v6")
				r = h.prepare(c)
			}
			if r.code != tc.code || !strings.Contains(r.stderr, tc.says) {
				t.Errorf("prepare: exit %d, stderr %q; want %d saying %q", r.code, r.stderr, tc.code, tc.says)
			}
			h.unchanged(c, v4, v6)
		})
	}
}

// TestScriptPrepareSaysTestTime: prepare says how long the kernel's test
// of the new rules took, which tells piwall when the applier's load of them
// is done.
func TestScriptPrepareSaysTestTime(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	h.misbehave("slow", "iptables-restore--test", "0.2")
	h.misbehave("slow", "ip6tables-restore--test", "0.1")
	_, rep := prepared(t, h, "f3")
	if rep.Tested < 300*time.Millisecond || rep.Tested > 5*time.Second {
		t.Errorf("prepare said its test took %v, want the fake restores' 0.3 s or a little more", rep.Tested)
	}
}

// TestScriptUnpackFails: prepare's command cannot unpack the run's files
// (a full /tmp, a directory of the run's name already there): it stops
// with ExitUnpack and what went wrong, before prepare runs, and the host is
// as it was.
func TestScriptUnpackFails(t *testing.T) {
	cases := []struct {
		name   string
		before func(h *fakeHost, c *Change)
		says   string
	}{
		{"tar fails", func(h *fakeHost, c *Change) {
			h.misbehave("fail", "tar", "tar: new.v4: Cannot write: No space left on device")
		}, "No space left on device"},
		{"the directory is there", func(h *fakeHost, c *Change) { mkdir(h.t, c.UploadDir()) }, "File exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := withRules(t, hostOpts{systemd: true})
			c := h.change("f2")
			tc.before(h, c)
			v4, v6 := h.live("v4"), h.live("v6")
			r := h.prepare(c)
			if r.code != ExitUnpack || !strings.Contains(r.stderr, tc.says) {
				t.Errorf("prepare: exit %d, stderr %q; want %d saying %q", r.code, r.stderr, ExitUnpack, tc.says)
			}
			if _, err := os.Stat(c.RunDir()); err == nil {
				t.Error("prepare ran after a failed unpack: its run directory is there")
			}
			h.unchanged(c, v4, v6)
		})
	}
}

// TestScriptApplyFails: IPv6 refused after IPv4 was loaded: the applier
// puts IPv4 back at once, and confirm reports the failure and reverts.
func TestScriptApplyFails(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	h.misbehave("fail", "ip6tables-restore", "ip6tables-restore: line 3 failed")
	c, _ := prepared(t, h, "g1")
	h.waitStatus(c, "failed ip6tables-restore", 5*time.Second)
	if h.live("v4") != oldV4 {
		t.Errorf("live v4 after the failure = %q, want the old rules back", h.live("v4"))
	}
	os.Remove(filepath.Join(h.root, "fail", "ip6tables-restore")) // the old IPv6 rules load again
	r := h.confirm(c)
	if r.code != ExitApplyFailed || !strings.Contains(r.stderr, "failed ip6tables-restore") {
		t.Errorf("confirm: exit %d, stderr %q; want %d", r.code, r.stderr, ExitApplyFailed)
	}
	if st := h.status(c); st.Status != StatusReverted || !st.LiveIsSaved {
		t.Errorf("status = %+v, want reverted", st)
	}
	if l, held := h.lock(); held {
		t.Errorf("the lock is still held: %q", l)
	}
}

// TestScriptConfirmRefuses: confirm persists nothing, and leaves the
// dead-man armed, over a connection older than the new rules, without an
// sshd above it, or when the live rules are no longer the new ones.
func TestScriptConfirmRefuses(t *testing.T) {
	refused := func(t *testing.T, h *fakeHost, c *Change, r result, code int, says string) {
		t.Helper()
		if r.code != code || !strings.Contains(r.stderr, says) {
			t.Errorf("confirm: exit %d, stderr %q; want %d saying %q", r.code, r.stderr, code, says)
		}
		if _, ok := h.file(h.paths.rules("v4")); ok {
			t.Error("confirm persisted the rules")
		}
		if !h.armed(c) {
			t.Error("confirm disarmed the dead-man")
		}
		if _, held := h.lock(); !held {
			t.Error("confirm released the lock")
		}
	}
	t.Run("old connection", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		// A session opened before the change: it waits for a line, then
		// runs confirm.
		c := h.change("h1")
		old := h.login("read -r line; " + c.ConfirmCommand(false, 0))
		in, err := old.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out, errb strings.Builder
		old.Stdout, old.Stderr, old.Env = &out, &errb, h.env()
		if err := old.Start(); err != nil {
			t.Fatal(err)
		}
		// Clock ticks are 1/100 s: the session must be older by one.
		time.Sleep(30 * time.Millisecond)
		if r := h.prepare(c); r.code != 0 {
			t.Fatalf("prepare: exit %d: %s", r.code, r.stderr)
		}
		h.waitStatus(c, StatusApplied, 5*time.Second)
		in.Write([]byte("go\n"))
		in.Close()
		r := result{code: 0}
		if err := old.Wait(); err != nil {
			r.code = old.ProcessState.ExitCode()
		}
		r.stderr = errb.String()
		refused(t, h, c, r, ExitNotNew, "this connection was opened before the new rules went live")
	})
	t.Run("newer than the rules by less than a round trip", func(t *testing.T) {
		// Its sshd started after the rules went live, but a round trip
		// before that its first packet may have met the old ones.
		h := withRules(t, hostOpts{systemd: true})
		c, _ := prepared(t, h, "h4")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		time.Sleep(30 * time.Millisecond)
		refused(t, h, c, h.run(h.login(c.ConfirmCommand(false, time.Minute))), ExitNotNew, "this connection was opened before the new rules went live")
		// A round trip it is newer by: confirmed.
		if r := h.run(h.login(c.ConfirmCommand(false, 10*time.Millisecond))); r.code != 0 {
			t.Errorf("confirm with rtt 10ms: exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("no sshd", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		c, _ := prepared(t, h, "h2")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		r := h.run(&exec.Cmd{Path: h.dash, Args: []string{"sh", "-c", c.ConfirmCommand(false, 0) + "; exit $?"}})
		refused(t, h, c, r, ExitNotNew, "no sshd process above this command")
	})
	t.Run("not live", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		c, _ := prepared(t, h, "h3")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		h.setLive("v6", oldV6) // another tool loaded rules of its own
		refused(t, h, c, h.confirm(c), ExitNotApplied, "the live IPv6 rules are not the new ones")
	})
}

// TestScriptConfirmWaits: confirm arriving while the applier is still
// loading (a slow ip6tables-restore) waits for it to end, then judges the
// connection: opened before the rules went live, it proves nothing; a
// connection opened after confirms.
func TestScriptConfirmWaits(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	h.misbehave("slow", "ip6tables-restore", "0.5")
	c, _ := prepared(t, h, "i1")
	h.waitStatus(c, StatusApplying, 5*time.Second)
	r := h.confirm(c)
	if r.code != ExitNotNew || !strings.Contains(r.stderr, "opened before the new rules went live") {
		t.Errorf("confirm while applying: exit %d, stderr %q; want %d", r.code, r.stderr, ExitNotNew)
	}
	r = h.confirm(c)
	if gen, err := ParseConfirm([]byte(r.stdout)); r.code != 0 || err != nil || gen != 2 {
		t.Errorf("confirm after: exit %d, generation %d, %v: %s", r.code, gen, err, r.stderr)
	}
}

// TestScriptKilledMidConfirm: confirm killed after it persisted the new
// rules but before it disarmed the dead-man (power lost, sshd killed):
// the dead-man removes the rules it persisted, as no file was there
// before, and puts the old rules back.
func TestScriptKilledMidConfirm(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c, _ := prepared(t, h, "j1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	h.misbehave("block", "sync-dir", "")
	conf := h.login(c.ConfirmCommand(false, 0))
	conf.Env = h.env()
	ownGroup(conf)
	if err := conf.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(h.calls(), "sync "+h.paths.RulesDir) {
		if time.Now().After(deadline) {
			t.Fatalf("confirm never synced the rules directory; calls %q", h.calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	killGroup(conf.Process.Pid)
	conf.Wait()
	if got, _ := h.file(h.paths.rules("v4")); got != newV4 {
		t.Fatalf("persisted v4 when confirm was killed = %q, want the new rules", got)
	}
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	if _, ok := h.file(h.paths.rules("v4")); ok {
		t.Error("the new rules are still persisted after the revert")
	}
	if h.live("v4") != oldV4 || h.live("v6") != oldV6 {
		t.Error("the old rules are not live after the revert")
	}
}

// TestScriptDeadManProcess: without systemd the dead-man is a process in
// a session of its own: it fires after its delay, or confirm ends it.
func TestScriptDeadManProcess(t *testing.T) {
	t.Run("fires", func(t *testing.T) {
		h := withRules(t, hostOpts{})
		c := h.change("k1")
		c.RevertAfter = time.Second
		r := h.prepare(c)
		if rep, err := ParsePrepare([]byte(r.stdout)); err != nil || rep.DeadMan != DeadManProcess {
			t.Fatalf("prepare said %+v, %v: %s", rep, err, r.stderr)
		}
		if h.called("systemd-run") {
			t.Error("systemd-run was called on a host without systemd")
		}
		h.waitStatus(c, StatusReverted, 5*time.Second)
		if h.live("v4") != oldV4 || h.live("v6") != oldV6 {
			t.Error("the old rules are not live after the dead-man fired")
		}
	})
	t.Run("disarmed", func(t *testing.T) {
		h := withRules(t, hostOpts{})
		c, _ := prepared(t, h, "k2")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		dm := strings.TrimSpace(h.log(c, "deadman"))
		pid, err := strconv.Atoi(strings.TrimPrefix(dm, "deadman=process "))
		if err != nil {
			t.Fatalf("deadman file %q", dm)
		}
		if r := h.confirm(c); r.code != 0 {
			t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
		}
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) {
			// A zombie until init reaps it: gone once /proc says so.
			if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dead-man process %d still runs after confirm", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// TestScriptFacts: a host whose iptables-save fails says so, and the facts
// are refused with its words; a generation asked for by number comes back
// with its rules, one that is not there as not found.
func TestScriptFacts(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	confirmed(t, h, "l1")
	if rb := h.facts(FactsRequest{Rollback: 2}).RollbackTo; rb == nil || rb.Number != 2 || !rb.Found || rb.V4 != newV4 {
		t.Errorf("rollback_to 2 = %+v, want the new rules", rb)
	}
	if rb := h.facts(FactsRequest{Rollback: 7}).RollbackTo; rb == nil || rb.Found {
		t.Errorf("rollback_to 7 = %+v, want not found", rb)
	}

	h.misbehave("fail", "ip6tables-save", "ip6tables-save v1.8.9 (nf_tables): table filter is incompatible")
	cmd := h.login(FactsCommand(false))
	cmd.Stdin = strings.NewReader(FactsScript(recordMarker, FactsRequest{Paths: h.paths}))
	r := h.run(cmd)
	_, err := ParseFacts(r.stdout, recordMarker)
	if err == nil || !strings.Contains(err.Error(), "ip6tables-save failed") || !strings.Contains(err.Error(), "incompatible") {
		t.Errorf("ParseFacts with ip6tables-save failing: %v", err)
	}
}

// A shared Pi: fail2ban guards SSH, Docker forwards for its containers on
// the older layout (rules in FORWARD itself), and the nat table holds a
// hotspot's MASQUERADE, persisted in rules.v4 before piwall came.
const (
	sharedV4 = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		"-A POSTROUTING -s 10.42.0.0/24 -o eth0 -j MASQUERADE\nCOMMIT\n" +
		"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:LEGACY - [0:0]\n:f2b-sshd - [0:0]\n" +
		"-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n" +
		"-A INPUT -j LEGACY\n" +
		"-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n" +
		"-A FORWARD -o docker0 -j DOCKER\n" +
		"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n" +
		"-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n" +
		"-A LEGACY -s 10.9.9.9/32 -j DROP\n" +
		"-A f2b-sshd -j RETURN\nCOMMIT\n"
	hotspotNat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		"-A POSTROUTING -s 10.42.0.0/24 -o eth0 -j MASQUERADE\nCOMMIT\n"
	// What fail2ban adds when it bans an address.
	banV4 = "-A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable"
)

func sharedHost(t *testing.T) *fakeHost {
	t.Helper()
	h := newFakeHost(t, hostOpts{systemd: true})
	h.setLive("v4", sharedV4)
	h.setLive("v6", oldV6)
	mkdir(t, h.paths.RulesDir)
	writeFile(t, h.paths.rules("v4"), hotspotNat+"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n"+banV4+"\nCOMMIT\n")
	var err error
	if h.foreign, err = firewall.NewForeign(nil, []string{"docker", "fail2ban"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// ban makes fail2ban ban an address, as iptables -I f2b-sshd 1 would.
func (h *fakeHost) ban() {
	h.t.Helper()
	live := h.live("v4")
	if !strings.Contains(live, "-A f2b-sshd -j RETURN") {
		h.t.Fatalf("no f2b-sshd chain live:\n%s", live)
	}
	h.setLive("v4", strings.Replace(live, "-A f2b-sshd -j RETURN", banV4+"\n-A f2b-sshd -j RETURN", 1))
}

// TestScriptSharedPi: a ban added while piwall applies is not drift and
// survives; Docker's rules stay, first in FORWARD; a chain nobody declared
// (LEGACY) goes; rules.v4 keeps the hotspot's nat and never fail2ban's
// bans; the declaration is kept for the next rollback.
func TestScriptSharedPi(t *testing.T) {
	h := sharedHost(t)
	c := h.change("m1")
	h.ban() // between plan and prepare
	if r := h.prepare(c); r.code != 0 {
		t.Fatalf("prepare refused a host where only fail2ban changed: exit %d: %s", r.code, r.stderr)
	}
	h.waitStatus(c, StatusApplied, 5*time.Second)
	live := h.live("v4")
	for _, line := range []string{
		"-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A INPUT -i lo -j ACCEPT\n",
		"-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n",
		"-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n",
		banV4 + "\n-A f2b-sshd -j RETURN\n",
		"-A POSTROUTING -s 10.42.0.0/24 -o eth0 -j MASQUERADE\n",
		":INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n",
	} {
		if !strings.Contains(live, line) {
			t.Errorf("live v4 lacks\n%s\nlive:\n%s", line, live)
		}
	}
	for _, gone := range []string{"LEGACY", "--dport 80 -j ACCEPT\n-A FORWARD"} {
		if strings.Contains(live, gone) {
			t.Errorf("live v4 still has %q:\n%s", gone, live)
		}
	}
	h.ban() // again, between apply and confirm
	r := h.confirm(c)
	if gen, err := ParseConfirm([]byte(r.stdout)); r.code != 0 || err != nil || gen != 2 {
		t.Fatalf("confirm on a host where fail2ban banned meanwhile: exit %d, generation %d, %v: %s", r.code, gen, err, r.stderr)
	}
	persisted, _ := h.file(h.paths.rules("v4"))
	if want := newV4 + hotspotNat; persisted != want {
		t.Errorf("rules.v4 = \n%s\nwant piwall's part and the nat table as the file had it:\n%s", persisted, want)
	}
	if f := h.facts(FactsRequest{}); f.Foreign == nil || f.Foreign.Text() != h.foreign.Text() {
		t.Errorf("the host's declaration after confirm: %v, want the run's", f.Foreign)
	}
	if strings.Count(h.live("v4"), banV4) != 2 {
		t.Errorf("the bans did not survive:\n%s", h.live("v4"))
	}
}

// TestScriptSharedPiReverts: the dead-man puts back piwall's part as it
// was and leaves others' as they are at that moment: a ban added after
// the apply survives the revert.
func TestScriptSharedPiReverts(t *testing.T) {
	h := sharedHost(t)
	c, _ := prepared(t, h, "n1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	h.ban()
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	want := strings.Replace(sharedV4, "-A f2b-sshd -j RETURN", banV4+"\n-A f2b-sshd -j RETURN", 1)
	if got := h.live("v4"); got != want {
		t.Errorf("live v4 after the revert:\n%s\nwant:\n%s", got, want)
	}
	if st := h.status(c); st.Status != StatusReverted || !st.LiveIsSaved {
		t.Errorf("status = %+v, want reverted with piwall's part as saved", st)
	}
}

// TestScriptConfirmCannotPersist: with /etc/iptables read-only, or a disk
// that fills while the rules are written, confirm fails and says why; no
// generation is recorded, the dead-man stays armed, a half-written file
// is not left behind, and the dead-man's revert puts everything back.
func TestScriptConfirmCannotPersist(t *testing.T) {
	for _, tc := range []struct {
		name, kind, text, says string
	}{
		{"read-only", "fail", "cp: cannot create regular file: Read-only file system", "Read-only file system"},
		{"full", "short", "120", "No space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := withRules(t, hostOpts{systemd: true})
			mkdir(t, h.paths.RulesDir)
			writeFile(t, h.paths.rules("v4"), oldV4)
			c, _ := prepared(t, h, "p1")
			h.waitStatus(c, StatusApplied, 5*time.Second)
			h.misbehave(tc.kind, "cp-rules", tc.text)
			r := h.confirm(c)
			if r.code != ExitPersistFailed || !strings.Contains(r.stderr, "saving the rules failed") || !strings.Contains(r.stderr, tc.says) {
				t.Errorf("confirm: exit %d, stderr %q; want %d saying %q", r.code, r.stderr, ExitPersistFailed, tc.says)
			}
			if _, err := ParseConfirm([]byte(r.stdout)); err == nil {
				t.Errorf("confirm said it confirmed: %q", r.stdout)
			}
			if got, _ := h.file(h.paths.rules("v4")); got != oldV4 {
				t.Errorf("rules.v4 = %q, want the old file untouched", got)
			}
			if left, _ := filepath.Glob(filepath.Join(h.paths.RulesDir, ".rules.*")); len(left) != 0 {
				t.Errorf("left behind: %q", left)
			}
			if f := h.facts(FactsRequest{}); f.Generation != 0 {
				t.Errorf("generation %d recorded", f.Generation)
			}
			if !h.armed(c) {
				t.Fatal("the dead-man was disarmed")
			}
			if r := h.fireTimer(c); r.code != 0 {
				t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
			}
			if h.live("v4") != oldV4 || h.live("v6") != oldV6 {
				t.Error("the old rules are not live after the revert")
			}
		})
	}
}

// TestScriptConfirmTwice: a second confirm of a confirmed run (its first
// answer lost) says the same and records nothing more.
func TestScriptConfirmTwice(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c := confirmed(t, h, "q1")
	r := h.confirm(c)
	if gen, err := ParseConfirm([]byte(r.stdout)); r.code != 0 || err != nil || gen != 2 {
		t.Errorf("second confirm: exit %d, generation %d, %v: %s", r.code, gen, err, r.stderr)
	}
	if f := h.facts(FactsRequest{History: true}); f.Generation != 2 || len(f.History) != 2 {
		t.Errorf("after two confirms: generation %d, %d generations; want 2 and 2", f.Generation, len(f.History))
	}
}

// TestScriptRevertWaitsForTheApplier: the dead-man fires while the
// applier is loading (a slow Pi, a short revert_after): it waits for the
// applier, then reverts; the old rules end live, and stay so.
func TestScriptRevertWaitsForTheApplier(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	release := h.misbehave("block", "ip6tables-restore", "")
	c, _ := prepared(t, h, "r1")
	h.waitStatus(c, StatusApplying, 5*time.Second)
	revert := exec.Command(h.dash, "-c", "sh "+filepath.Join(c.RunDir(), "revert.sh"))
	revert.Env = h.env()
	if err := revert.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	os.Remove(release)
	if err := revert.Wait(); err != nil {
		t.Fatalf("revert: %v", err)
	}
	h.waitStatus(c, StatusReverted, 5*time.Second)
	if h.live("v4") != oldV4 || h.live("v6") != oldV6 {
		t.Errorf("live after the revert:\n%s\n%s", h.live("v4"), h.live("v6"))
	}
	if r := h.confirm(c); r.code != ExitNotApplied {
		t.Errorf("confirm after the revert: exit %d, want %d", r.code, ExitNotApplied)
	}
}

// TestScriptApplierAfterRevert: the dead-man came first (the applier held
// up past revert_after): the applier then loads nothing.
func TestScriptApplierAfterRevert(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c, _ := prepared(t, h, "s1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	// Rewind the run to before the applier, then run the dead-man and a
	// late applier, in that order.
	h.setLive("v4", oldV4)
	h.setLive("v6", oldV6)
	os.Remove(filepath.Join(c.RunDir(), "status"))
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	// The applier waits for prepare's pid to go: one that has.
	gone := exec.Command(h.dash, "-c", "true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	late := h.run(&exec.Cmd{Path: h.dash, Args: []string{"sh", filepath.Join(c.RunDir(), "apply.sh"), strconv.Itoa(gone.Process.Pid)}})
	if late.code != 0 {
		t.Fatalf("late applier: exit %d: %s", late.code, late.stderr)
	}
	if h.live("v4") != oldV4 || h.live("v6") != oldV6 {
		t.Error("the late applier loaded the new rules after the revert")
	}
	if st := h.status(c); st.Status != StatusReverted {
		t.Errorf("status %+v, want reverted", st)
	}
}

// TestScriptBootRestore: the facts tell whether the boot will load the
// rules; prepare puts back a missing plugin, confirm enables a disabled
// netfilter-persistent (failing, like a write, when it cannot), and an
// enabled nftables.service is refused before anything changes.
func TestScriptBootRestore(t *testing.T) {
	t.Run("a missing plugin", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		os.Remove(filepath.Join(h.paths.PluginsDir, "25-ip6tables"))
		f := h.facts(FactsRequest{})
		if !f.NeedsIptables() || !slices.Equal(f.Restore.missing(), []string{"plugin 25-ip6tables"}) {
			t.Fatalf("facts: needs iptables %v, missing %q; want the plugin", f.NeedsIptables(), f.Restore.missing())
		}
		c, rep := prepared(t, h, "b1")
		if !rep.Installed || !h.called("apt-get -o DPkg::Lock::Timeout=60 install -y -qq --reinstall ") {
			t.Errorf("prepare said %+v; calls %q; want a reinstall", rep, h.calls())
		}
		h.waitStatus(c, StatusApplied, 5*time.Second)
		if r := h.confirm(c); r.code != 0 {
			t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
		}
		if f := h.facts(FactsRequest{}); f.NeedsIptables() {
			t.Errorf("after the apply, still missing %q", f.Restore.missing())
		}
	})
	t.Run("netfilter-persistent disabled", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		h.unit("netfilter-persistent", "disabled")
		c, _ := prepared(t, h, "b2")
		if !c.EnableRestore {
			t.Fatal("the change does not enable netfilter-persistent")
		}
		if got, _ := h.file(filepath.Join(h.root, "units", "netfilter-persistent.service")); got != "disabled\n" {
			t.Errorf("prepare changed the service before confirm: %q", got)
		}
		h.waitStatus(c, StatusApplied, 5*time.Second)
		if r := h.confirm(c); r.code != 0 {
			t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
		}
		if f := h.facts(FactsRequest{}); f.Restore.Units["netfilter-persistent"] != "enabled" {
			t.Errorf("after confirm netfilter-persistent is %q, want enabled", f.Restore.Units["netfilter-persistent"])
		}
	})
	t.Run("netfilter-persistent cannot be enabled", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		h.unit("netfilter-persistent", "disabled")
		c, _ := prepared(t, h, "b3")
		h.waitStatus(c, StatusApplied, 5*time.Second)
		h.misbehave("fail", "systemctl enable", "Failed to enable unit: Read-only file system")
		r := h.confirm(c)
		if r.code != ExitPersistFailed || !strings.Contains(r.stderr, "enabling netfilter-persistent: Failed to enable unit") {
			t.Errorf("confirm: exit %d, stderr %q; want %d", r.code, r.stderr, ExitPersistFailed)
		}
		if !h.armed(c) {
			t.Error("the dead-man was disarmed")
		}
	})
	t.Run("nftables.service enabled", func(t *testing.T) {
		h := withRules(t, hostOpts{systemd: true})
		h.unit("nftables", "enabled")
		err := bootRestore(h.facts(FactsRequest{}))
		if err == nil || !strings.Contains(err.Error(), "nftables.service is enabled") {
			t.Errorf("bootRestore: %v, want nftables.service refused", err)
		}
	})
}

// TestScriptSlowSync: the dead-man fires while confirm is still flushing
// the rules (a slow SD card): it waits for confirm, finds it disarmed, and
// leaves the confirmed rules live and persisted.
func TestScriptSlowSync(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c, _ := prepared(t, h, "y1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	h.misbehave("slow", "sync-dir", "1")
	conf := make(chan result, 1)
	go func() { conf <- h.confirm(c) }()
	deadline := time.Now().Add(5 * time.Second)
	for !h.called("sync " + h.paths.RulesDir) {
		if time.Now().After(deadline) {
			t.Fatalf("confirm never synced the rules directory; calls %q", h.calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	timer, _ := h.file(filepath.Join(h.root, "timers", "piwall-revert-"+c.Run))
	rev := h.run(h.login(strings.TrimSpace(timer)))
	if r := <-conf; r.code != 0 {
		t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
	}
	if rev.code != 0 {
		t.Fatalf("revert: exit %d: %s", rev.code, rev.stderr)
	}
	if h.live("v4") != newV4 {
		t.Errorf("live v4 = %q, want the confirmed rules", h.live("v4"))
	}
	if got, _ := h.file(h.paths.rules("v4")); got != newV4 {
		t.Errorf("rules.v4 = %q, want the confirmed rules", got)
	}
	if st := h.status(c); st.Status != StatusConfirmed {
		t.Errorf("status %q, want confirmed", st.Status)
	}
}

// TestScriptRevertWithoutItsLock: a dead-man that cannot open the run's
// lock (a disk remounted read-only, say) still puts the old rules back.
func TestScriptRevertWithoutItsLock(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c, _ := prepared(t, h, "w1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	busy := filepath.Join(c.RunDir(), "busy")
	os.Remove(busy)
	if err := os.Symlink(filepath.Join(h.root, "gone", "busy"), busy); err != nil {
		t.Fatal(err)
	}
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	if h.live("v4") != oldV4 || h.live("v6") != oldV6 {
		t.Errorf("live after the revert:\n%s\n%s", h.live("v4"), h.live("v6"))
	}
}

// TestScriptRevertDisablesWhatConfirmEnabled: confirm enabled
// netfilter-persistent for the new files and was stopped before the end;
// the dead-man disables it again, so the boot loads nothing it did not.
func TestScriptRevertDisablesWhatConfirmEnabled(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	h.unit("netfilter-persistent", "disabled")
	c, _ := prepared(t, h, "x1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	// Confirm is stopped while it enables the service, after the enable
	// took effect (a killed systemctl may have made its links already).
	h.misbehave("block", "systemctl enable", "")
	conf := h.login(c.ConfirmCommand(false, 0))
	conf.Env = h.env()
	ownGroup(conf)
	if err := conf.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !h.called("systemctl enable") {
		if time.Now().After(deadline) {
			t.Fatalf("confirm never enabled the service; calls %q", h.calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.unit("netfilter-persistent", "enabled")
	killGroup(conf.Process.Pid)
	conf.Wait()
	os.Remove(filepath.Join(h.root, "block", "systemctl enable"))
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	if f := h.facts(FactsRequest{}); f.Restore.Units["netfilter-persistent"] != "disabled" {
		t.Errorf("after the revert netfilter-persistent is %q, want disabled again", f.Restore.Units["netfilter-persistent"])
	}
}

// TestScriptRevertRestoreFails: the dead-man fires while iptables-restore
// fails: the run's status says the revert failed and which tool failed,
// never "reverted", so nobody is told the old rules are back.
func TestScriptRevertRestoreFails(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c, _ := prepared(t, h, "t1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	h.misbehave("fail", "iptables-restore", "iptables-restore v1.8.9 (nf_tables): line 2 failed")
	h.fireTimer(c)
	if got, _ := h.file(filepath.Join(c.RunDir(), "status")); strings.TrimSpace(got) != "failed revert: iptables-restore" {
		t.Errorf("status file %q, want %q", strings.TrimSpace(got), "failed revert: iptables-restore")
	}
	if st := h.status(c); st.Status != StatusFailed || st.Detail != "revert: iptables-restore" || st.LiveIsSaved {
		t.Errorf("status = %+v, want failed, detail %q, the saved rules not live", st, "revert: iptables-restore")
	}
	if h.live("v4") != newV4 {
		t.Errorf("live v4 = %q, want the new rules still there", h.live("v4"))
	}
}

// TestScriptConfirmTwiceAtOnce: a second confirm of a run (a retry)
// starts while the first is still flushing the rules directory on a slow
// SD card: both answer the generation the run recorded, and the history
// holds the rules found and the run's rules, no extra generation.
func TestScriptConfirmTwiceAtOnce(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c, _ := prepared(t, h, "u1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	h.misbehave("slow", "sync-dir", "0.5")
	var confs [2]*exec.Cmd
	var outs, errs [2]strings.Builder
	for i := range confs {
		confs[i] = h.login(c.ConfirmCommand(false, 0))
		confs[i].Env = h.env()
		confs[i].Stdout, confs[i].Stderr = &outs[i], &errs[i]
	}
	if err := confs[0].Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !h.called("sync " + h.paths.RulesDir) {
		if time.Now().After(deadline) {
			t.Fatalf("confirm never synced the rules directory; calls %q", h.calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Well inside the first's sync, and late enough that the two can
	// never reach the generations side by side: without the run's lock
	// the second records a generation of its own.
	time.Sleep(250 * time.Millisecond)
	if err := confs[1].Start(); err != nil {
		t.Fatal(err)
	}
	for i, conf := range confs {
		err := conf.Wait()
		gen, perr := ParseConfirm([]byte(outs[i].String()))
		if err != nil || perr != nil || gen != 2 {
			t.Errorf("confirm %d: %v, generation %d, %v: %s; want generation 2", i+1, err, gen, perr, errs[i].String())
		}
	}
	f := h.facts(FactsRequest{History: true})
	var nums []int
	for _, g := range f.History {
		nums = append(nums, g.Number)
	}
	if f.Generation != 2 || !slices.Equal(nums, []int{1, 2}) {
		t.Errorf("after two confirms at once: generation %d, generations %v; want 2 and [1 2]", f.Generation, nums)
	}
	for fam, want := range map[string]string{"v4": newV4, "v6": newV6} {
		if got, _ := h.file(h.paths.rules(fam)); got != want {
			t.Errorf("persisted %s = %q, want the new rules", fam, got)
		}
	}
}

// TestScriptConfirmAndRevertInterleaved: on a host whose rules are
// persisted already, the dead-man fires while confirm is flushing the rules
// directory. Whichever wins, the host ends in one consistent state: the new
// rules live and persisted, the run confirmed and its generation recorded;
// or the old rules live and persisted, the run reverted, no generation
// recorded and confirm failing. Never a mix of the two.
func TestScriptConfirmAndRevertInterleaved(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	mkdir(t, h.paths.RulesDir)
	writeFile(t, h.paths.rules("v4"), oldV4)
	writeFile(t, h.paths.rules("v6"), oldV6)
	c, _ := prepared(t, h, "v1")
	h.waitStatus(c, StatusApplied, 5*time.Second)
	h.misbehave("slow", "sync-dir", "1")
	conf := make(chan result, 1)
	go func() { conf <- h.confirm(c) }()
	deadline := time.Now().Add(5 * time.Second)
	for !h.called("sync " + h.paths.RulesDir) {
		if time.Now().After(deadline) {
			t.Fatalf("confirm never synced the rules directory; calls %q", h.calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	rev := h.fireTimer(c)
	r := <-conf
	// which names a rules text: "old", "new", or the text itself.
	which := func(text, oldText, newText string) string {
		switch text {
		case oldText:
			return "old"
		case newText:
			return "new"
		}
		return strconv.Quote(text)
	}
	gen, perr := ParseConfirm([]byte(r.stdout))
	persV4, _ := h.file(h.paths.rules("v4"))
	persV6, _ := h.file(h.paths.rules("v6"))
	st := h.status(c)
	f := h.facts(FactsRequest{History: true})
	state := fmt.Sprintf("live %s/%s, persisted %s/%s, status %s, generation %d, confirm exit %d (%q), revert exit %d (%q)",
		which(h.live("v4"), oldV4, newV4), which(h.live("v6"), oldV6, newV6), which(persV4, oldV4, newV4), which(persV6, oldV6, newV6),
		st.Status, f.Generation, r.code, strings.TrimSpace(r.stdout+r.stderr), rev.code, strings.TrimSpace(rev.stderr))
	confirmedState := h.live("v4") == newV4 && h.live("v6") == newV6 && persV4 == newV4 && persV6 == newV6 &&
		st.Status == StatusConfirmed && r.code == 0 && perr == nil && gen == 2 && f.Generation == 2 &&
		len(f.History) == 2 && f.History[1].Outcome == "applied" && f.History[1].Run == c.Run
	revertedState := h.live("v4") == oldV4 && h.live("v6") == oldV6 && persV4 == oldV4 && persV6 == oldV6 &&
		st.Status == StatusReverted && st.LiveIsSaved && r.code != 0 && perr != nil && f.Generation == 0
	if !confirmedState && !revertedState {
		t.Errorf("a mix of confirmed and reverted: %s", state)
	}
}
