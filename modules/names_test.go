package modules

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// The names' address sets and their refresher, run by the scripts'
// harness (harness_test.go): fake.sh keeps each set in a file and answers
// getent from dns/NAME, so a name can move or stop resolving.

const apiName = "api.example.com"

var (
	apiSet4 = firewall.SetName(apiName, firewall.IPv4)
	apiSet6 = firewall.SetName(apiName, firewall.IPv6)
)

// namesDesired compiles an allowlist that reaches api.example.com by name,
// refreshed every refresh, with the addresses the plan saw.
func namesDesired(t *testing.T, refresh time.Duration, addrs ...string) *firewall.Desired {
	t.Helper()
	pol := namesPolicy(refresh)
	r := firewall.Resolution{Name: apiName}
	for _, a := range addrs {
		r.Addrs = append(r.Addrs, netip.MustParseAddr(a))
	}
	d, err := firewall.Compile(firewall.Input{Policy: pol, Names: map[string]firewall.Resolution{apiName: r}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// namesPolicy is an allowlist that admits SSH from 192.168.1.50 and
// reaches api.example.com by name, refreshed every refresh.
func namesPolicy(refresh time.Duration) *plans.Policy {
	return &plans.Policy{DNS: plans.DNS{Mode: "none"}, DNSRefresh: refresh,
		Outbound: []*plans.Entry{{Allowlist: "kiosk", Direction: plans.Outbound, Index: 1,
			Peers: []plans.Endpoint{{Name: apiName}}, Ports: []plans.Port{{Proto: "tcp", From: 443, To: 443}}}},
		Inbound: []*plans.Entry{{Allowlist: "kiosk", Direction: plans.Inbound, Index: 1,
			Peers: []plans.Endpoint{{Prefix: netip.MustParsePrefix("192.168.1.50/32")}}, Ports: []plans.Port{{Proto: "tcp", From: 22, To: 22}}}}}
}

// namesChange is a run of d on h.
func namesChange(h *fakeHost, run string, d *firewall.Desired) *Change {
	c := h.change(run)
	c.NewV4, c.NewV6 = d.V4.Text(), d.V6.Text()
	c.Sets, c.Names = d.SetsText(), NamesConf(d)
	c.Install = c.Install || !h.facts(FactsRequest{}).Tools["ipset"]
	return c
}

// members are the addresses a set holds on the fake host.
func (h *fakeHost) members(set string) []string {
	text, ok := h.file(filepath.Join(h.root, "sets", set))
	if !ok {
		return nil
	}
	var out []string
	for line := range strings.Lines(text) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "add" {
			out = append(out, f[2])
		}
	}
	return out
}

// resolves makes name resolve to addrs on the host ("none": not at all).
func (h *fakeHost) resolves(name string, addrs ...string) {
	p := filepath.Join(h.root, "dns", name)
	if len(addrs) == 0 {
		os.Remove(p)
		return
	}
	writeFile(h.t, p, strings.Join(addrs, "\n")+"\n")
}

// refresh runs the refresher as its timer does.
func (h *fakeHost) refresh() result {
	h.t.Helper()
	return h.run(h.login("sh " + Quote(filepath.Join(h.paths.namesDir(), "refresh.sh"))))
}

// age makes every address of a name's state seen secs earlier.
func (h *fakeHost) age(set string, secs int) {
	h.t.Helper()
	p := filepath.Join(h.paths.namesDir(), "state", set)
	text, ok := h.file(p)
	if !ok {
		h.t.Fatalf("no state for %s", set)
	}
	var b strings.Builder
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		n, _ := strconv.Atoi(f[1])
		b.WriteString(f[0] + " " + strconv.Itoa(n-secs) + "\n")
	}
	writeFile(h.t, p, b.String())
}

// TestScriptNamesApply: a fresh Pi whose rules match a name's sets gets
// ipset and ipset-persistent with iptables, the sets before the rules
// (which would not load without them), the sets persisted beside the
// rules, the refresher's configuration and its systemd timer, and the
// generation keeps its sets and names.
func TestScriptNamesApply(t *testing.T) {
	h := newFakeHost(t, hostOpts{bare: true, systemd: true})
	d := namesDesired(t, 20*time.Second, "203.0.113.7", "2001:db8::7")
	c := namesChange(h, "n1", d)
	r := h.prepare(c)
	if r.code != 0 {
		t.Fatalf("prepare: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if !h.called("apt-get -o DPkg::Lock::Timeout=60 install -y -qq --reinstall iptables netfilter-persistent iptables-persistent ipset ipset-persistent") {
		t.Errorf("ipset and ipset-persistent were not installed; calls %q", h.calls())
	}
	h.waitStatus(c, StatusApplied, 5*time.Second)
	if got := h.members(apiSet4); strings.Join(got, ",") != "203.0.113.7" {
		t.Errorf("%s holds %q, want the plan's 203.0.113.7", apiSet4, got)
	}
	if !strings.Contains(h.live("v4"), "--match-set "+apiSet4+" dst") {
		t.Errorf("the live rules do not match the set:\n%s", h.live("v4"))
	}
	if r := h.confirm(c); r.code != 0 {
		t.Fatalf("confirm: exit %d: %s", r.code, r.stderr)
	}
	persisted, _ := h.file(h.paths.setsFile())
	for _, want := range []string{"create " + apiSet4 + " ", "add " + apiSet4 + " 203.0.113.7", "add " + apiSet6 + " 2001:db8::7"} {
		if !strings.Contains(persisted, want) {
			t.Errorf("%s lacks %q:\n%s", h.paths.setsFile(), want, persisted)
		}
	}
	if conf, _ := h.file(filepath.Join(h.paths.namesDir(), "conf")); conf != c.Names {
		t.Errorf("the refresher's conf is %q, want %q", conf, c.Names)
	}
	timer, _ := h.file(filepath.Join(h.paths.UnitDir, "piwall-names.timer"))
	if !strings.Contains(timer, "OnUnitActiveSec=20s") || !h.called("systemctl enable piwall-names.timer") {
		t.Errorf("no refresher timer every 20s: %q; calls %q", timer, h.calls())
	}
	for _, ext := range []string{"sets", "names"} {
		if got, _ := h.file(filepath.Join(h.paths.generationsDir(), "0002."+ext)); got == "" {
			t.Errorf("generation 2 keeps no %s", ext)
		}
	}
}

// TestScriptNamesRefresh: the refresher follows the name through the
// host's resolver: a new address at once, an old one until the grace
// window has passed since it was last seen, and nothing lost while the
// name does not resolve.
func TestScriptNamesRefresh(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	d := namesDesired(t, 20*time.Second, "203.0.113.7")
	c := namesChange(h, "n2", d)
	h.resolves(apiName, "203.0.113.7")
	confirmChange(t, h, c)
	grace := int(d.Grace() / time.Second)

	t.Run("the name moves", func(t *testing.T) {
		h.resolves(apiName, "203.0.113.8", "2001:db8::8")
		if r := h.refresh(); r.code != 0 {
			t.Fatalf("refresh: exit %d: %s", r.code, r.stderr)
		}
		if got := strings.Join(h.members(apiSet4), ","); got != "203.0.113.7,203.0.113.8" {
			t.Errorf("%s holds %s, want the new address beside the old one", apiSet4, got)
		}
		if got := strings.Join(h.members(apiSet6), ","); got != "2001:db8::8" {
			t.Errorf("%s holds %s, want 2001:db8::8", apiSet6, got)
		}
		if p, _ := h.file(h.paths.setsFile()); !strings.Contains(p, "add "+apiSet4+" 203.0.113.8") {
			t.Errorf("the persisted sets lack the new address:\n%s", p)
		}
	})
	t.Run("the old address goes after the grace window", func(t *testing.T) {
		h.age(apiSet4, grace+1)
		h.refresh()
		if got := strings.Join(h.members(apiSet4), ","); got != "203.0.113.8" {
			t.Errorf("%s holds %s, want only 203.0.113.8 once 203.0.113.7 was last seen %ds ago", apiSet4, got, grace+1)
		}
	})
	t.Run("a lookup that fails keeps the last-known addresses", func(t *testing.T) {
		h.resolves(apiName)
		h.age(apiSet4, 10*grace)
		if r := h.refresh(); r.code != 0 {
			t.Fatalf("refresh: exit %d: %s", r.code, r.stderr)
		}
		if got := strings.Join(h.members(apiSet4), ","); got != "203.0.113.8" {
			t.Errorf("%s holds %q after a failed lookup, want 203.0.113.8 kept", apiSet4, got)
		}
		st, _ := h.file(filepath.Join(h.paths.namesDir(), "state", apiSet4+".status"))
		if !strings.Contains(st, "failed ") {
			t.Errorf("the failure is not recorded: %q", st)
		}
	})
	t.Run("no sets persisted where no persisted rules match them", func(t *testing.T) {
		// An empty rules directory (a confirm that could not write it, a
		// fresh tmpfs over it): the refresher writes nothing there.
		for _, p := range []string{h.paths.rules("v4"), h.paths.rules("v6"), h.paths.setsFile()} {
			os.Remove(p)
		}
		h.refresh()
		if _, ok := h.file(h.paths.setsFile()); ok {
			t.Errorf("the refresher wrote %s beside no rules", h.paths.setsFile())
		}
		writeFile(t, h.paths.rules("v4"), c.NewV4)
	})
	t.Run("the name resolves again", func(t *testing.T) {
		h.resolves(apiName, "203.0.113.9")
		h.refresh()
		if got := strings.Join(h.members(apiSet4), ","); got != "203.0.113.9" {
			t.Errorf("%s holds %s, want 203.0.113.9 (the others were last seen long ago)", apiSet4, got)
		}
		if st, _ := h.file(filepath.Join(h.paths.namesDir(), "state", apiSet4+".status")); strings.Contains(st, "failed") {
			t.Errorf("a refresh that worked still says failed: %q", st)
		}
		if p, _ := h.file(h.paths.setsFile()); !strings.Contains(p, "add "+apiSet4+" 203.0.113.9") {
			t.Errorf("the sets are not persisted again beside rules that match them:\n%s", p)
		}
	})
}

// TestScriptNamesRevert: the dead-man puts back the names the host
// refreshed before the run (none), and the sets persisted as they were.
func TestScriptNamesRevert(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c := namesChange(h, "n3", namesDesired(t, time.Minute, "203.0.113.7"))
	if r := h.prepare(c); r.code != 0 {
		t.Fatalf("prepare: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	h.waitStatus(c, StatusApplied, 5*time.Second)
	if r := h.fireTimer(c); r.code != 0 {
		t.Fatalf("revert: exit %d: %s", r.code, r.stderr)
	}
	if h.live("v4") != oldV4 {
		t.Errorf("live v4 after the revert:\n%s", h.live("v4"))
	}
	if _, ok := h.file(filepath.Join(h.paths.namesDir(), "conf")); ok {
		t.Error("the reverted run's names are still refreshed")
	}
	if _, ok := h.file(h.paths.setsFile()); ok {
		t.Error("the reverted run's sets are persisted")
	}
}

// TestScriptNamesRemoved: a run whose rules match no name (a rollback to
// rules without names, rollback --open) stops the refresher, removes its
// units and state, and destroys the sets the live rules no longer match.
func TestScriptNamesRemoved(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	c := namesChange(h, "n4", namesDesired(t, time.Minute, "203.0.113.7"))
	confirmChange(t, h, c)
	open := h.change("n5")
	open.NewV4, open.NewV6 = OpenRuleset, OpenRuleset
	confirmChange(t, h, open)
	for _, p := range []string{h.paths.namesDir(), filepath.Join(h.paths.UnitDir, "piwall-names.timer"), filepath.Join(h.paths.UnitDir, "piwall-names.service"),
		filepath.Join(h.root, "sets", apiSet4), filepath.Join(h.root, "sets", apiSet6)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if p, _ := h.file(h.paths.setsFile()); strings.Contains(p, firewall.SetPrefix) {
		t.Errorf("the persisted sets still hold piwall's:\n%s", p)
	}
	if !h.called("systemctl disable --now piwall-names.timer") {
		t.Errorf("the refresher's timer was not stopped; calls %q", h.calls())
	}
}

// TestNamesPlan: what plan makes of a name the host refreshes, from the
// facts the harness's host prints: the refresher's state read back, a
// name that moved reported as such, and a name that does not resolve now
// planned with its last-known addresses and a warning, where a name never
// resolved is an error.
func TestNamesPlan(t *testing.T) {
	h := withRules(t, hostOpts{systemd: true})
	h.installed()
	d := namesDesired(t, time.Minute, "203.0.113.7")
	c := namesChange(h, "n6", d)
	h.resolves(apiName, "203.0.113.7")
	confirmChange(t, h, c)
	h.refresh()
	host := &plans.Host{Name: "pi", Address: plans.Value[string]{V: "192.168.1.11"}, Policy: namesPolicy(time.Minute)}
	plan := func() (*ChangeSet, error) {
		return NewChangeSet(host, h.facts(FactsRequest{Names: []string{apiName}}))
	}

	h.resolves(apiName, "203.0.113.8")
	cs, err := plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Refresh) != 1 {
		t.Fatalf("Refresh = %+v, want api.example.com's", cs.Refresh)
	}
	r := cs.Refresh[0]
	if fmt.Sprint(r.Held, r.New, r.Gone) != "[203.0.113.7] [203.0.113.8] [203.0.113.7]" || r.Refreshed == nil || r.Failed != nil {
		t.Errorf("report %+v: want held 203.0.113.7, new and gone, refreshed, no failure", r)
	}
	if !cs.Unchanged() {
		t.Errorf("a name that moved is not a change of the rules: %v", cs.Changes)
	}

	h.resolves(apiName)
	h.refresh()
	cs, err = plan()
	if err != nil {
		t.Fatalf("a name with last-known addresses: %v", err)
	}
	if len(cs.Warnings) == 0 || !strings.Contains(cs.Warnings[0], "its sets keep the addresses last seen (203.0.113.7)") {
		t.Errorf("warnings %q", cs.Warnings)
	}
	if r := cs.Refresh[0]; r.Failed == nil || r.Gone != nil {
		t.Errorf("report %+v: want the failure, and nothing gone", r)
	}

	os.RemoveAll(h.paths.namesDir())
	if _, err := plan(); err == nil || !strings.Contains(err.Error(), apiName+" does not resolve") {
		t.Errorf("a name never resolved: %v, want an error", err)
	}
}
