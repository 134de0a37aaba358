package modules

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// The change set tests are module cases as data: the recorded facts of
// testdata/facts/ in, for a host of testdata/site.hcl, and what piwall
// would do out, including the case where nothing must change.
//
//	go test ./modules -run 'ChangeSet|Rollback'

// recordedFacts parses one of testdata/facts/ that must parse.
func recordedFacts(t *testing.T, file string) *Facts {
	t.Helper()
	marker, out := readFactsCase(t, file)
	f, err := ParseFacts(out, marker)
	if err != nil {
		t.Fatalf("testdata/facts/%s.txt: %v", file, err)
	}
	return f
}

func TestNewChangeSet(t *testing.T) {
	tests := []struct {
		name      string
		host      string
		facts     string
		change    func(*Facts) // applied to the facts first
		unchanged bool
		install   bool
		lockout   []string // what Lockout and its hint must say; nil: no lockout
		warnings  []string // what the warnings must say, in order
		check     func(t *testing.T, cs *ChangeSet)
	}{
		{
			name: "fresh pi", host: "pi-01", facts: "fresh-pi", install: true,
			check: func(t *testing.T, cs *ChangeSet) {
				add, remove, update := cs.Counts()
				if add == 0 || remove != 0 {
					t.Errorf("Counts() = %d added, %d removed, %d updated; want additions only on a fresh Pi", add, remove, update)
				}
				if want := digest(OpenRuleset); cs.ExpectV4 != want || cs.ExpectV6 != want {
					t.Errorf("ExpectV4, ExpectV6 = %s, %s; want the digest of the kernel's defaults, %s", cs.ExpectV4, cs.ExpectV6, want)
				}
			},
		},
		{
			name: "iptables installed, never loaded", host: "pi-01", facts: "iptables-never-loaded", install: false,
		},
		{
			name: "already applied", host: "pi-01", facts: "provisioned", unchanged: true,
		},
		{
			name: "already applied, lock held by another run", host: "pi-01", facts: "lock-held", unchanged: true,
			warnings: []string{"locked by bob@ops-laptop since 2025-11-25 09:00:00Z (run 8f3a61c2d9e04b7a); apply is refused until it is released or expires at 2025-11-25 09:10:00Z"},
		},
		{
			name: "docker's rules are docker's", host: "pi-02", facts: "docker-chains", install: true,
			check: func(t *testing.T, cs *ChangeSet) {
				for _, rs := range []*firewall.Ruleset{cs.Desired.V4, cs.Desired.V6} {
					if text := strings.ToLower(rs.Text()); strings.Contains(text, "docker") {
						t.Errorf("desired rules hold Docker's: coexist = [\"docker\"] leaves them to Docker\n%s", rs.Text())
					}
				}
				for _, ch := range cs.Changes {
					if strings.Contains(strings.ToLower(ch.Raw+ch.What), "docker") {
						t.Errorf("a change touches Docker's rules: %+v", ch)
					}
				}
				// Docker's chains and its FORWARD rules come first in what
				// the lockout check evaluates.
				merged := cs.Foreign.Merge(cs.Desired.V4, cs.Facts.Live[firewall.IPv4]).Table("filter")
				if merged.Chain("DOCKER-USER") == nil || len(merged.Chain("FORWARD").Rules) == 0 ||
					merged.Chain("FORWARD").Rules[0].Line("FORWARD") != "-A FORWARD -j DOCKER-USER" {
					t.Errorf("merged FORWARD: %+v", merged.Chain("FORWARD"))
				}
			},
		},
		{
			name: "operator's address not admitted", host: "pi-09", facts: "provisioned",
			lockout: []string{"192.168.1.50", "tcp/22", "--force"},
		},
		{
			name: "sshd on another port than the plan admits", host: "pi-01", facts: "provisioned", unchanged: true,
			change:  func(f *Facts) { f.SSHPort = 2222 },
			lockout: []string{"192.168.1.50", "tcp/2222"},
		},
		{
			name: "operator outside the admitted network", host: "pi-01", facts: "provisioned", unchanged: true,
			change:  func(f *Facts) { f.Operator = netip.MustParseAddr("10.1.2.3") },
			lockout: []string{"10.1.2.3", "tcp/22"},
		},
		{
			name: "a loopback resolver is warned about", host: "pi-01", facts: "provisioned",
			change: func(f *Facts) { f.Resolvers = []netip.Addr{netip.MustParseAddr("127.0.0.53")} },
			check: func(t *testing.T, cs *ChangeSet) {
				if len(cs.Warnings) != 1 || !strings.Contains(cs.Warnings[0], "127.0.0.53, a local stub") {
					t.Errorf("Warnings = %q, want one about the stub resolver", cs.Warnings)
				}
			},
		},
		{
			name: "operator unknown: no lockout check", host: "pi-09", facts: "provisioned",
			change: func(f *Facts) { f.Operator = netip.Addr{} },
		},
		{
			name: "name errors of names the host does not use", host: "pi-09", facts: "name-does-not-resolve", install: true,
			lockout: []string{"192.168.1.50"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := recordedFacts(t, tc.facts)
			if tc.change != nil {
				tc.change(f)
			}
			cs, err := NewChangeSet(siteHost(t, tc.host), f)
			if err != nil {
				t.Fatalf("NewChangeSet: %v", err)
			}
			if cs.Host != tc.host || cs.Facts != f || cs.Desired == nil {
				t.Errorf("change set of host %q with facts %p and desired %v; want host %q and the facts given", cs.Host, cs.Facts, cs.Desired, tc.host)
			}
			if got := cs.Unchanged(); got != tc.unchanged {
				t.Errorf("Unchanged() = %v, want %v; changes:\n%s", got, tc.unchanged, changesText(cs))
			}
			if !tc.unchanged && len(cs.Changes) == 0 {
				t.Errorf("no changes, want some")
			}
			if cs.Install != tc.install {
				t.Errorf("Install = %v, want %v", cs.Install, tc.install)
			}
			_, own4 := f.Own(firewall.IPv4, cs.Foreign)
			_, own6 := f.Own(firewall.IPv6, cs.Foreign)
			if cs.Fingerprint != f.Fingerprint(cs.Foreign) || cs.ExpectV4 != own4 || cs.ExpectV6 != own6 {
				t.Errorf("Fingerprint, ExpectV4, ExpectV6 = %s, %s, %s; want the facts'", cs.Fingerprint, cs.ExpectV4, cs.ExpectV6)
			}
			switch {
			case tc.lockout == nil && cs.Lockout != nil:
				t.Errorf("Lockout = %v, want none", cs.Lockout)
			case tc.lockout != nil && cs.Lockout == nil:
				t.Errorf("no lockout, want one saying %q", tc.lockout)
			case tc.lockout != nil:
				hints := Hints(cs.Lockout)
				if len(hints) != 1 || strings.Contains(cs.Lockout.Error(), "hint") {
					t.Errorf("Lockout = %q with hints %q, want one hint apart from the error", cs.Lockout, hints)
				}
				said := cs.Lockout.Error() + "\n" + strings.Join(hints, "\n")
				for _, s := range tc.lockout {
					if !strings.Contains(said, s) {
						t.Errorf("Lockout = %q, hints %q; want them to say %q", cs.Lockout, hints, s)
					}
				}
			}
			if tc.warnings != nil && strings.Join(cs.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("Warnings = %q, want %q", cs.Warnings, tc.warnings)
			}
			if tc.check != nil {
				tc.check(t, cs)
			}
		})
	}
}

func TestNewChangeSetNameErrors(t *testing.T) {
	f := recordedFacts(t, "name-does-not-resolve")
	cs, err := NewChangeSet(siteHost(t, "pi-01"), f)
	if err == nil {
		t.Fatalf("NewChangeSet = %d changes, want an error naming api.example.com", len(cs.Changes))
	}
	if want := "api.example.com does not resolve on the host (getent ahosts 2)"; err.Error() != want {
		t.Errorf("NewChangeSet: got error %q, want %q", err, want)
	}

	f.NameErrors["dashboard.example.com"] = "has no addresses on the host"
	delete(f.Names, "dashboard.example.com")
	_, err = NewChangeSet(siteHost(t, "pi-01"), f)
	if want := "dashboard.example.com has no addresses on the host; api.example.com does not resolve on the host (getent ahosts 2)"; err == nil || err.Error() != want {
		t.Errorf("NewChangeSet with two name errors: got %v, want %q (in the order the plan names them)", err, want)
	}
}

func TestRollback(t *testing.T) {
	d := desiredPi01(t)
	tests := []struct {
		name   string
		to     *GenerationRules // nil: the recorded one, generation 3
		open   bool
		v4, v6 string
		added  string // a rule the rollback adds
		gone   string // and one it removes
	}{
		{name: "to the previous generation", v4: gen3V4(d), v6: d.V6.Text(), added: "192.168.1.77", gone: "203.0.113.7"},
		{name: "to an older generation", to: &GenerationRules{Number: 2, V4: gen2V4(d), V6: d.V6.Text(), Found: true}, v4: gen2V4(d), v6: d.V6.Text(), gone: "203.0.113.7"},
		{name: "open", open: true, v4: OpenRuleset, v6: OpenRuleset, gone: "piwall: loopback"},
		{name: "open ignores the generation", to: &GenerationRules{Number: 9}, open: true, v4: OpenRuleset, v6: OpenRuleset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := recordedFacts(t, "rollback-generations")
			if tc.to != nil {
				f.RollbackTo = tc.to
			}
			cs, err := Rollback("pi-01", f, tc.open)
			if err != nil {
				t.Fatalf("Rollback(open %v) to %+v: %v", tc.open, f.RollbackTo, err)
			}
			if got := cs.Desired.V4.Text(); got != tc.v4 {
				t.Errorf("desired IPv4:\n%s\nwant:\n%s", got, tc.v4)
			}
			if got := cs.Desired.V6.Text(); got != tc.v6 {
				t.Errorf("desired IPv6:\n%s\nwant:\n%s", got, tc.v6)
			}
			if cs.Unchanged() || cs.Install || cs.Lockout != nil {
				t.Errorf("Unchanged %v, Install %v, Lockout %v; want changes, no install, no lockout", cs.Unchanged(), cs.Install, cs.Lockout)
			}
			text := changesText(cs)
			if tc.added != "" && !hasChange(cs, firewall.Add, tc.added) {
				t.Errorf("no change adds a rule with %s:\n%s", tc.added, text)
			}
			if tc.gone != "" && !hasChange(cs, firewall.Remove, tc.gone) {
				t.Errorf("no change removes a rule with %s:\n%s", tc.gone, text)
			}
		})
	}
}

func TestRollbackErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Facts)
		err    string
		hint   string
	}{
		{
			name:   "no generation before the current one",
			change: func(f *Facts) { f.Generation, f.RollbackTo = 1, &GenerationRules{Number: 0} },
			err:    "no generation before the current one (1) to roll back to", hint: "piwall history pi-01",
		},
		{
			name:   "nothing applied yet",
			change: func(f *Facts) { f.Generation, f.RollbackTo = 0, &GenerationRules{Number: -1} },
			err:    "no generation before the current one (0) to roll back to", hint: "piwall history pi-01",
		},
		{
			name:   "generation not on the host",
			change: func(f *Facts) { f.RollbackTo = &GenerationRules{Number: 9} },
			err:    "generation 9 is not on the host", hint: "piwall history pi-01",
		},
		{
			name:   "generation without its IPv6 rules",
			change: func(f *Facts) { f.RollbackTo.V6, f.RollbackTo.Found = "", false },
			err:    "generation 3 is not on the host", hint: "piwall history pi-01",
		},
		{
			name:   "generation not asked for",
			change: func(f *Facts) { f.RollbackTo = nil },
			err:    "the facts hold no generation to roll back to",
		},
		{
			name:   "IPv4 rules that do not parse",
			change: func(f *Facts) { f.RollbackTo.V4 = "*filter\n:INPUT DROP [0:0]\n" },
			err:    "generation 3, IPv4: ",
		},
		{
			name:   "IPv6 rules that do not parse",
			change: func(f *Facts) { f.RollbackTo.V6 = "-A INPUT -j ACCEPT\n" },
			err:    "generation 3, IPv6: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := recordedFacts(t, "rollback-generations")
			tc.change(f)
			cs, err := Rollback("pi-01", f, false)
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Fatalf("Rollback to %+v = %v, %v; want error %q", f.RollbackTo, cs, err, tc.err)
			}
			if hints := strings.Join(Hints(err), "\n"); hints != tc.hint {
				t.Errorf("Rollback's hints = %q, want %q", hints, tc.hint)
			}
		})
	}
}

func TestChangeSetCounts(t *testing.T) {
	cs := &ChangeSet{Changes: []firewall.Change{
		{Action: firewall.Add}, {Action: firewall.Add}, {Action: firewall.Remove}, {Action: firewall.Update},
	}}
	if add, remove, update := cs.Counts(); add != 2 || remove != 1 || update != 1 {
		t.Errorf("Counts() = %d, %d, %d; want 2, 1, 1", add, remove, update)
	}
	if cs.Unchanged() {
		t.Errorf("Unchanged() with changes = true")
	}
	if cs := (&ChangeSet{Install: true}); cs.Unchanged() {
		t.Errorf("Unchanged() with only an install to do = true, want false")
	}
	if cs := (&ChangeSet{}); !cs.Unchanged() {
		t.Errorf("Unchanged() with nothing to do = false")
	}
}

func hasChange(cs *ChangeSet, action firewall.Action, raw string) bool {
	for _, ch := range cs.Changes {
		if ch.Action == action && strings.Contains(ch.Raw, raw) {
			return true
		}
	}
	return false
}

func changesText(cs *ChangeSet) string {
	var b strings.Builder
	for _, ch := range cs.Changes {
		b.WriteString(ch.Action.Symbol() + " " + ch.Family.String() + " " + ch.Chain + ": " + ch.What + "\n")
	}
	return b.String()
}

// TestBothBackends: a host with filter rules in iptables-legacy while
// iptables uses nf_tables is refused, whatever --force says: its plan
// fails, naming both and how to see the other's rules.
func TestBothBackends(t *testing.T) {
	f := recordedFacts(t, "provisioned")
	if f.Backend != "nf_tables" {
		t.Fatalf("Backend = %q, want nf_tables as recorded", f.Backend)
	}
	if _, err := NewChangeSet(siteHost(t, "pi-01"), f); err != nil {
		t.Fatalf("an empty legacy filter table refused the host: %v", err)
	}
	legacy, err := firewall.Parse("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 10.9.9.9/32 -j DROP\nCOMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	f.Other = map[string]*firewall.Ruleset{"iptables-legacy-save": legacy}
	_, err = NewChangeSet(siteHost(t, "pi-01"), f)
	if err == nil || !strings.Contains(err.Error(), "both iptables backends, nf_tables (piwall's, iptables) and legacy (1 rule)") {
		t.Fatalf("NewChangeSet: %v, want both backends named", err)
	}
	if h := strings.Join(Hints(err), " "); !strings.Contains(h, "sudo iptables-legacy-save -t filter") || !strings.Contains(h, "--force does not override") {
		t.Errorf("hints %q", Hints(err))
	}
}

// TestCompareRefusesOthersLines: desired rules that hold a line of
// someone else's (a generation saved by an earlier piwall, say) are
// refused, never loaded over theirs.
func TestCompareRefusesOthersLines(t *testing.T) {
	f := recordedFacts(t, "provisioned")
	foreign, err := firewall.NewForeign(nil, []string{"fail2ban"})
	if err != nil {
		t.Fatal(err)
	}
	d := &firewall.Desired{}
	if d.V4, err = firewall.Parse("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n:f2b-sshd - [0:0]\n-A f2b-sshd -j RETURN\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if d.V6, err = firewall.Parse(OpenRuleset); err != nil {
		t.Fatal(err)
	}
	if _, err := Compare("pi-01", d, foreign, f, ""); err == nil || !strings.Contains(err.Error(), `":f2b-sshd - [0:0]", which the plan declares someone else's`) {
		t.Errorf("Compare: %v", err)
	}
}

// TestBootRestore: whether the host's boot will load the rules, from its
// recorded facts: what apply installs or enables, and what it refuses.
func TestBootRestore(t *testing.T) {
	tests := []struct {
		name, facts string
		change      func(*Facts)
		install     string // InstallWhy; "" when nothing is installed
		enable      bool
		ephemeral   string
		err, hint   string
	}{
		{name: "provisioned: loaded at boot", facts: "provisioned"},
		{name: "nftables.service enabled", facts: "boot-restore-broken",
			err:  "nftables.service is enabled: at boot it loads /etc/nftables.conf, whose default begins with flush ruleset, which removes piwall's rules",
			hint: "sudo systemctl disable nftables"},
		{name: "iptables-persistent removed, netfilter-persistent disabled", facts: "boot-restore-broken",
			change:  func(f *Facts) { f.Restore.Units["nftables"] = "disabled" },
			install: "the boot would not load the rules: missing iptables-persistent (rc), plugin 15-ip4tables, plugin 25-ip6tables",
			enable:  true},
		{name: "netfilter-persistent masked", facts: "provisioned",
			change: func(f *Facts) { f.Restore.Units["netfilter-persistent"] = "masked" },
			err:    "netfilter-persistent is masked", hint: "sudo systemctl unmask netfilter-persistent"},
		{name: "ufw enabled", facts: "provisioned",
			change: func(f *Facts) { f.Restore.Units["ufw"], f.Restore.UFWEnabled = "enabled", true },
			err:    "ufw is enabled", hint: "sudo ufw disable"},
		{name: "ufw installed, switched off", facts: "provisioned",
			change: func(f *Facts) { f.Restore.Units["ufw"] = "enabled" }},
		{name: "firewalld enabled", facts: "provisioned",
			change: func(f *Facts) { f.Restore.Units["firewalld"] = "enabled" },
			err:    "firewalld is enabled", hint: "disable --now firewalld"},
		{name: "an install dpkg did not finish", facts: "dpkg-interrupted",
			install: "the boot would not load the rules: missing netfilter-persistent (iU), iptables-persistent (iF)"},
		{name: "raspi-config's overlay root", facts: "overlay-root",
			ephemeral: "the host boots with an overlay root (boot=overlay, raspi-config's overlay file system): what is written to /etc/iptables is kept in RAM and gone at the next boot"},
		{name: "rules directory on tmpfs", facts: "provisioned",
			change:    func(f *Facts) { f.RulesFS.Type, f.RulesFS.MountPoint = "tmpfs", "/etc/iptables" },
			ephemeral: "/etc/iptables is on tmpfs (mounted on /etc/iptables): what is written there is gone at the next boot"},
		{name: "rules directory read-only", facts: "rules-read-only",
			err:  "/etc/iptables is on a read-only file system (ext4, mounted on /etc/iptables): the rules could not be persisted",
			hint: "sudo mount -o remount,rw /etc/iptables"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := recordedFacts(t, tc.facts)
			if tc.change != nil {
				tc.change(f)
			}
			cs, err := NewChangeSet(siteHost(t, "pi-01"), f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NewChangeSet: %v, want an error saying %q", err, tc.err)
				}
				if h := Hints(err); len(h) != 1 || !strings.Contains(h[0], tc.hint) {
					t.Errorf("hints %q, want one saying %q", h, tc.hint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cs.Install != (tc.install != "") || cs.InstallWhy != tc.install {
				t.Errorf("Install %v, InstallWhy %q; want %q", cs.Install, cs.InstallWhy, tc.install)
			}
			if cs.EnableRestore != tc.enable {
				t.Errorf("EnableRestore = %v, want %v", cs.EnableRestore, tc.enable)
			}
			if cs.Ephemeral != tc.ephemeral {
				t.Errorf("Ephemeral = %q, want %q", cs.Ephemeral, tc.ephemeral)
			}
			if tc.ephemeral != "" && (len(cs.Warnings) == 0 || !strings.Contains(cs.Warnings[len(cs.Warnings)-1], "--until-reboot")) {
				t.Errorf("Warnings = %q, want the ephemeral root and --until-reboot", cs.Warnings)
			}
		})
	}
}

// TestServices: the host's own services its rules keep working, from its
// recorded facts and the plan's switches, each said with why.
func TestServices(t *testing.T) {
	tests := []struct {
		name, facts, address string
		keep                 plans.Keep
		want                 firewall.Services
		kept                 []string
	}{
		{name: "a static address, no daemons", facts: "provisioned"},
		{name: "a lease, a DHCPv6 lease, avahi", facts: "dhcp-avahi",
			want: firewall.Services{DHCP: true, DHCPv6: true, MLD: true, MDNS: true},
			kept: []string{
				"dhcp: eth0's 192.168.1.11/24 is leased (dhcp = false turns it off)",
				"dhcpv6: eth0's 2001:db8:1::11/128 is leased by DHCPv6 (dhcpv6 = false turns it off)",
				"mld: IPv6 is up on eth0 (mld = false turns it off)",
				"mdns: avahi-daemon runs (mdns = false turns it off)",
			}},
		{name: "switched off", facts: "dhcp-avahi", keep: plans.Keep{DHCP: plans.Off, DHCPv6: plans.Off, MLD: plans.Off, MDNS: plans.Off}},
		{name: "switched on", facts: "provisioned", keep: plans.Keep{DHCP: plans.On, MDNS: plans.On},
			want: firewall.Services{DHCP: true, MDNS: true},
			kept: []string{"dhcp: the plan says dhcp = true", "mdns: the plan says mdns = true"}},
		{name: "reached by its .local name", facts: "provisioned", address: "raspberrypi.local",
			want: firewall.Services{MDNS: true},
			kept: []string{"mdns: the plan reaches the host as raspberrypi.local (mdns = false turns it off)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := recordedFacts(t, tc.facts)
			got, kept := services(tc.keep, f, tc.address)
			if got != tc.want || strings.Join(kept, "\n") != strings.Join(tc.kept, "\n") {
				t.Errorf("services = %+v, %q; want %+v, %q", got, kept, tc.want, tc.kept)
			}
		})
	}
	// NewChangeSet puts them in the desired rules and says so.
	h := siteHost(t, "pi-01")
	cs, err := NewChangeSet(h, recordedFacts(t, "dhcp-avahi"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Kept) != 4 || !strings.Contains(cs.Desired.V4.Text(), `--sport 68 --dport 67 -m comment --comment "piwall: dhcp"`) ||
		!strings.Contains(cs.Desired.V6.Text(), `--icmpv6-type 143 -m comment --comment "piwall: mld"`) {
		t.Errorf("kept %q; desired:\n%s\n%s", cs.Kept, cs.Desired.V4.Text(), cs.Desired.V6.Text())
	}
}
