package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// The facts tests feed ParseFacts the output of FactsScript as Pis print
// it: one file per case under testdata/facts/, the marker on its first
// line and the output after it. Most are recordings of the real script
// (facts_record_test.go says how they are made and checked); the rest are
// recordings changed by hand into what a real run can also print, and say
// so. The expected facts are here, field by field.
//
//	go test ./modules -run Facts
//	go test ./modules -run '^$' -fuzz FuzzParseFacts -fuzztime 60s
//	go test ./modules -run '^$' -fuzz FuzzNormalizeSave -fuzztime 60s

// emptyDigest is the digest of what NormalizeSave makes of nothing, when
// iptables-save prints nothing or is not there: one empty line.
const emptyDigest = "01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b"

// wantFacts are the expected Facts of a case, in comparable form: rulesets
// as their Text, addresses as strings.
type wantFacts struct {
	Operator   string
	Self       string
	SSHPort    int
	Tools      []string  // sorted
	LiveDigest [2]string // IPv4, IPv6
	Live       [2]string // Text of the parsed rulesets
	Resolvers  []string
	Generation int
	Lock       *Lock
	Persisted  [2]string
	Names      map[string]firewall.Resolution
	NameErrors map[string]string
	RollbackTo *GenerationRules
	History    []Generation
	Boot       string
	Restore    Restore
	RulesFS    RulesFS
	Addrs      []HostAddr
	Daemons    map[string]bool
}

var (
	piTools        = []string{"apt-get", "getent", "systemd-run"}
	iptablesTools  = []string{"ip6tables", "ip6tables-restore", "ip6tables-save", "iptables", "iptables-restore", "iptables-save"}
	installedTools = sorted(append(append([]string{"netfilter-persistent"}, iptablesTools...), piTools...))
)

// freshPi01 is pi-01 fresh from the box: no iptables, nothing of piwall.
func freshPi01() wantFacts {
	return wantFacts{
		Operator: "192.168.1.50", Self: "192.168.1.11", SSHPort: 22,
		Tools:      piTools,
		LiveDigest: [2]string{emptyDigest, emptyDigest},
		Resolvers:  []string{"192.168.1.1", "fd00:1::1"},
		Persisted:  [2]string{"none", "none"},
		Names:      siteNames,
		NameErrors: map[string]string{},
		Boot:       strings.TrimSpace(recordBootID),
		Restore:    Restore{Units: noUnits()},
		RulesFS:    RulesFS{Dir: "/etc", MountPoint: "/", Type: "ext4"},
		Daemons:    map[string]bool{},
	}
}

// noUnits is what systemctl is-enabled says of the services a fresh Pi
// lacks.
func noUnits() map[string]string {
	return map[string]string{"netfilter-persistent": "", "nftables": "", "ufw": "", "firewalld": ""}
}

// withRestore is w on a Pi with iptables-persistent installed: its
// packages, plugins and service.
func withRestore(w wantFacts) wantFacts {
	w.Restore = Restore{
		Packages: map[string]string{"iptables": "ii", "netfilter-persistent": "ii", "iptables-persistent": "ii"},
		Plugins:  map[string]bool{"15-ip4tables": true, "25-ip6tables": true},
		Units:    noUnits(),
	}
	w.Restore.Units["netfilter-persistent"] = "enabled"
	w.RulesFS.Dir = "/etc/iptables"
	return w
}

// provisionedPi01 is pi-01 with its rules from testdata/site.hcl applied as
// generation 4 and persisted.
func provisionedPi01(t *testing.T) wantFacts {
	t.Helper()
	d := desiredPi01(t)
	w := freshPi01()
	w.Tools = installedTools
	w.LiveDigest = [2]string{
		"fce5a194b269cb387ea0d7801f9fa98ae0588616d66347ddcdbefef8cfe07b42",
		"8d0002aa2c9b9f3616f67f42f083c4497b2993f43ddcb919f1fcb14b6d34db67",
	}
	w.Live = [2]string{d.V4.Text(), d.V6.Text()}
	w.Generation = 4
	w.Persisted = w.LiveDigest
	return withRestore(w)
}

// factsCase is one file of testdata/facts/.
type factsCase struct {
	file string // without .txt
	made string // "recorded", or how the file was made by hand
	want func(t *testing.T) wantFacts
	err  string // for an output ParseFacts refuses: what the error says
}

var factsCases = []factsCase{
	{file: "fresh-pi", made: "recorded", want: func(*testing.T) wantFacts { return freshPi01() }},
	{file: "iptables-never-loaded", made: "recorded", want: func(*testing.T) wantFacts {
		w := withRestore(freshPi01())
		w.Tools = installedTools
		w.RulesFS.Dir = "/etc"
		return w
	}},
	{file: "legacy-without-systemd", made: "iptables-never-loaded, as an older Pi (bullseye, iptables-legacy, another init) prints it", want: func(*testing.T) wantFacts {
		w := freshPi01()
		w.Tools = slices.DeleteFunc(slices.Clone(installedTools), func(s string) bool { return s == "systemd-run" })
		// An older piwall's facts script: no boot sections.
		w.Boot, w.Restore, w.RulesFS, w.Daemons = "", Restore{}, RulesFS{}, nil
		return w
	}},
	{file: "provisioned", made: "recorded", want: provisionedPi01},
	{file: "docker-chains", made: "recorded", want: func(*testing.T) wantFacts {
		w := freshPi01()
		w.Self = "192.168.1.12"
		w.Tools = sorted(append(slices.Clone(iptablesTools), piTools...))
		w.LiveDigest[0] = "49d47b49a7162a989d44ad9094d8865d39bba7daa9aac84383746fe95df4d897"
		w.Live[0] = dockerFilterV4 + dockerNatV4 // filter first, as iptables-save prints them
		// iptables without netfilter-persistent: nothing loads rules at boot.
		w.Restore.Packages, w.Restore.Plugins = map[string]string{"iptables": "ii"}, map[string]bool{}
		return w
	}},
	{file: "name-does-not-resolve", made: "recorded", want: func(*testing.T) wantFacts {
		w := freshPi01()
		w.Names = map[string]firewall.Resolution{"dashboard.example.com": siteNames["dashboard.example.com"]}
		w.NameErrors = map[string]string{"api.example.com": "does not resolve on the host (getent ahosts 2)"}
		return w
	}},
	{file: "cname-both-families", made: "recorded", want: func(*testing.T) wantFacts {
		w := freshPi01()
		w.Names = map[string]firewall.Resolution{
			"dashboard.example.com": siteNames["dashboard.example.com"],
			"api.example.com":       siteNames["api.example.com"],
			"v6only.example.com":    {Name: "v6only.example.com", Addrs: addrs("2001:db8:66::6")},
			"localhost":             {Name: "localhost", Addrs: addrs("127.0.0.1", "::1")},
		}
		return w
	}},
	{file: "lock-held", made: "recorded", want: func(t *testing.T) wantFacts {
		w := provisionedPi01(t)
		w.Lock = &Lock{Run: "8f3a61c2d9e04b7a", Operator: "bob@ops-laptop", Since: date("2025-11-25T09:00:00Z"), Expires: date("2025-11-25T09:10:00Z")}
		return w
	}},
	{file: "rollback-generations", made: "recorded", want: func(t *testing.T) wantFacts {
		d := desiredPi01(t)
		w := provisionedPi01(t)
		w.Names = map[string]firewall.Resolution{}
		// Previous: the one before 4, as the host computes it.
		w.RollbackTo = &GenerationRules{Number: 3, V4: gen3V4(d), V6: d.V6.Text(), Found: true}
		w.History = []Generation{
			{Number: 1, Time: date("2026-11-20T09:14:02Z"), Kind: "found", Run: "3c9d0a51e7b2f486", Outcome: "replaced"},
			{Number: 2, Time: date("2026-11-20T09:14:03Z"), Operator: "alice@laptop", Kind: "apply", Source: "1d4be0a97c2f3e58", Run: "3c9d0a51e7b2f486", Outcome: "applied"},
			{Number: 3, Time: date("2026-11-25T08:40:11Z"), Kind: "found", Run: "a07e5b19c4d26f38", Outcome: "replaced"},
			{Number: 4, Time: date("2026-11-25T08:40:12Z"), Operator: "alice@laptop", Kind: "apply", Source: "9e61f2c08ab4d357", Run: "a07e5b19c4d26f38", Outcome: "applied"},
		}
		return w
	}},
	{file: "save-warns-on-stderr", made: "recorded", want: provisionedPi01},
	{file: "boot-restore-broken", made: "recorded", want: func(t *testing.T) wantFacts {
		w := provisionedPi01(t)
		w.Restore.Packages["iptables-persistent"] = "rc"
		w.Restore.Plugins = map[string]bool{}
		w.Restore.Units["netfilter-persistent"], w.Restore.Units["nftables"] = "disabled", "enabled"
		return w
	}},
	{file: "dpkg-interrupted", made: "recorded", want: func(*testing.T) wantFacts {
		w := withRestore(freshPi01())
		w.Tools = installedTools
		w.Restore.Packages["netfilter-persistent"], w.Restore.Packages["iptables-persistent"] = "iU", "iF"
		w.RulesFS.Dir = "/etc"
		return w
	}},
	{file: "overlay-root", made: "recorded", want: func(t *testing.T) wantFacts {
		w := provisionedPi01(t)
		w.RulesFS = RulesFS{Dir: "/etc/iptables", MountPoint: "/", Type: "overlay", OverlayBoot: true}
		return w
	}},
	{file: "dhcp-avahi", made: "recorded", want: func(*testing.T) wantFacts {
		w := withRestore(freshPi01())
		w.Tools = installedTools
		w.RulesFS.Dir = "/etc"
		w.Addrs = []HostAddr{
			{Iface: "eth0", Prefix: netip.MustParsePrefix("192.168.1.11/24"), Global: true, Dynamic: true},
			{Iface: "eth0", Prefix: netip.MustParsePrefix("2001:db8:1::11/128"), Global: true, Dynamic: true},
		}
		w.Daemons = map[string]bool{"dhclient": true, "avahi-daemon": true}
		return w
	}},
	{file: "rules-read-only", made: "recorded", want: func(t *testing.T) wantFacts {
		w := provisionedPi01(t)
		w.RulesFS = RulesFS{Dir: "/etc/iptables", MountPoint: "/etc/iptables", Type: "ext4", ReadOnly: true}
		return w
	}},
	{
		file: "not-root-without-sudo", made: "recorded",
		err: "facts, section v4: iptables-save failed: iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)",
	},
	{
		file: "error-cut-before-end", made: "provisioned, cut in the middle of the IPv6 rules, as a dropped connection leaves it",
		err: "facts: the output ends early (the script did not finish)",
	},
	{
		file: "error-garbage-before-first-section", made: "fresh-pi, after a line that a login user's ~/.bashrc prints",
		err: `facts: unexpected output before the first section: "kiosk-01: dashboard.service is active"`,
	},
	{
		file: "error-bad-ssh-connection", made: "fresh-pi, run where $SSH_CONNECTION is not set",
		err: `facts, section ssh: SSH_CONNECTION is "", want four fields`,
	},
}

// readFactsCase returns the marker and the output of a case file.
func readFactsCase(t testing.TB, file string) (marker, out string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "facts", file+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	marker, out, ok := strings.Cut(string(b), "\n")
	if !ok || marker == "" {
		t.Fatalf("testdata/facts/%s.txt: want the marker on the first line", file)
	}
	return marker, out
}

func TestParseFactsGolden(t *testing.T) {
	for _, tc := range factsCases {
		t.Run(tc.file, func(t *testing.T) {
			marker, out := readFactsCase(t, tc.file)
			f, err := ParseFacts(out, marker)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseFacts: got error %v, want %q", err, tc.err)
				}
				if f != nil {
					t.Errorf("ParseFacts returned facts with its error: %+v", f)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFacts: %v", err)
			}
			checkFacts(t, f, tc.want(t))
		})
	}
}

// TestFactsCasesAreAllThere keeps the table and the files in step: a file
// without a case is tested by nothing, a case without a file fails above,
// and a recorded case must be one TestFactsRecordings makes.
func TestFactsCasesAreAllThere(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "facts", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no cases in testdata/facts/*.txt")
	}
	known := map[string]bool{}
	for _, tc := range factsCases {
		known[tc.file] = true
	}
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".txt"); !known[name] {
			t.Errorf("%s has no case in factsCases", f)
		}
	}
	recorded := map[string]bool{}
	for _, rc := range recordings(t) {
		recorded[rc.name] = true
	}
	for _, tc := range factsCases {
		if (tc.made == "recorded") != recorded[tc.file] {
			t.Errorf("case %s says it is made %q, but recordings() has it: %v", tc.file, tc.made, recorded[tc.file])
		}
	}
}

// checkFacts compares got with want field by field.
func checkFacts(t *testing.T, got *Facts, want wantFacts) {
	t.Helper()
	check := func(field string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %#v\nwant %#v", field, got, want)
		}
	}
	var tools []string
	for tool, ok := range got.Tools {
		if ok {
			tools = append(tools, tool)
		}
	}
	check("Operator", got.Operator.String(), want.Operator)
	check("Self", got.Self.String(), want.Self)
	check("SSHPort", got.SSHPort, want.SSHPort)
	check("Tools", sorted(tools), want.Tools)
	check("LiveText digests", map[firewall.Family]string{firewall.IPv4: digest(got.LiveText[firewall.IPv4]), firewall.IPv6: digest(got.LiveText[firewall.IPv6])},
		map[firewall.Family]string{firewall.IPv4: want.LiveDigest[0], firewall.IPv6: want.LiveDigest[1]})
	for i, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		rs := got.Live[fam]
		if rs == nil {
			t.Errorf("Live[%v] is nil, want a parsed ruleset", fam)
			continue
		}
		check("Live["+fam.String()+"].Text()", rs.Text(), want.Live[i])
	}
	var resolvers []string
	for _, a := range got.Resolvers {
		resolvers = append(resolvers, a.String())
	}
	check("Resolvers", resolvers, want.Resolvers)
	check("Generation", got.Generation, want.Generation)
	check("Lock", got.Lock, want.Lock)
	check("Persisted", got.Persisted, map[firewall.Family]string{firewall.IPv4: want.Persisted[0], firewall.IPv6: want.Persisted[1]})
	check("Names", got.Names, want.Names)
	check("NameErrors", got.NameErrors, want.NameErrors)
	check("RollbackTo", got.RollbackTo, want.RollbackTo)
	check("History", got.History, want.History)
	check("Boot", got.Boot, want.Boot)
	check("Restore", got.Restore, want.Restore)
	check("RulesFS", got.RulesFS, want.RulesFS)
	check("Addrs", got.Addrs, want.Addrs)
	check("Daemons", got.Daemons, want.Daemons)
}

// TestOwnIsTheCanonicalText holds the facts script to what prepare
// and confirm rely on: the digest of a live ruleset that piwall loaded is
// the digest of the very text piwall wrote, and of the persisted file.
func TestOwnIsTheCanonicalText(t *testing.T) {
	d := desiredPi01(t)
	marker, out := readFactsCase(t, "provisioned")
	f, err := ParseFacts(out, marker)
	if err != nil {
		t.Fatal(err)
	}
	for fam, text := range map[firewall.Family]string{firewall.IPv4: d.V4.Text(), firewall.IPv6: d.V6.Text()} {
		sum := sha256.Sum256([]byte(text))
		want := hex.EncodeToString(sum[:])
		if _, got := f.Own(fam, nil); got != want {
			t.Errorf("piwall's part of the live %v rules has digest %s, want sha256 of the desired text %s", fam, got, want)
		}
		if got := f.Persisted[fam]; got != want {
			t.Errorf("Persisted[%v] = %s, want sha256 of the desired text %s", fam, got, want)
		}
	}
	if sum := sha256.Sum256([]byte("\n")); hex.EncodeToString(sum[:]) != emptyDigest {
		t.Errorf("emptyDigest is not the digest of an empty line")
	}
	// A host with no tables loaded prints one empty line: piwall's part of
	// it is the kernel's defaults, as prepare saves it.
	f, err = ParseFacts(factsOutput(recordMarker, "v4\n", "v6"), recordMarker)
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if _, got := f.Own(fam, nil); got != digest(OpenRuleset) || len(f.Live[fam].Tables) != 0 {
			t.Errorf("no tables loaded: piwall's part %s, %d tables; want the kernel's defaults, %s, and none", got, len(f.Live[fam].Tables), digest(OpenRuleset))
		}
	}
}

// factsOutput makes an output of the facts script from sections, each
// "name" or "name\nbody", with marker m, ending with the end section.
func factsOutput(m string, sections ...string) string {
	var b strings.Builder
	for _, s := range append(sections, "end") {
		name, body, _ := strings.Cut(s, "\n")
		b.WriteString(m + " " + name + "\n")
		if body != "" {
			b.WriteString(body + "\n")
		}
	}
	return b.String()
}

func TestParseFactsSections(t *testing.T) {
	const m = recordMarker
	tests := []struct {
		name  string
		out   string
		check func(t *testing.T, f *Facts)
		err   string
	}{
		{
			name: "only the end section",
			out:  factsOutput(m),
			check: func(t *testing.T, f *Facts) {
				if f.Operator.IsValid() || f.Generation != 0 || len(f.Live) != 0 {
					t.Errorf("got %+v, want zero facts", f)
				}
			},
		},
		{name: "empty output", out: "", err: "ends early"},
		{name: "blank lines only", out: "\n\n", err: "ends early"},
		{name: "end of another run's marker", out: factsOutput("==>piwall-000000000000"), err: "unexpected output before the first section"},
		{name: "blank lines before the first section", out: "\n\n" + factsOutput(m, "generation\n1")},
		{
			name: "IPv4-mapped addresses are unmapped",
			out:  factsOutput(m, "ssh\n::ffff:192.168.1.50 51234 ::ffff:192.168.1.11 2222"),
			check: func(t *testing.T, f *Facts) {
				if f.Operator.String() != "192.168.1.50" || f.Self.String() != "192.168.1.11" || f.SSHPort != 2222 {
					t.Errorf("got operator %v, self %v, port %d; want 192.168.1.50, 192.168.1.11, 2222", f.Operator, f.Self, f.SSHPort)
				}
			},
		},
		{
			name: "operator over IPv6",
			out:  factsOutput(m, "ssh\nfd00:1::50 51234 fd00:1::11 22"),
			check: func(t *testing.T, f *Facts) {
				if f.Operator.String() != "fd00:1::50" || f.Self.String() != "fd00:1::11" {
					t.Errorf("got operator %v, self %v; want fd00:1::50, fd00:1::11", f.Operator, f.Self)
				}
			},
		},
		{name: "SSH_CONNECTION with three fields", out: factsOutput(m, "ssh\n192.168.1.50 51234 192.168.1.11"), err: "want four fields"},
		{name: "SSH_CONNECTION with a name", out: factsOutput(m, "ssh\nlaptop.lan 51234 192.168.1.11 22"), err: "section ssh"},
		{name: "SSH_CONNECTION with a bad host address", out: factsOutput(m, "ssh\n192.168.1.50 51234 192.168.1 22"), err: "section ssh"},
		{name: "SSH_CONNECTION with a port that is not a number", out: factsOutput(m, "ssh\n192.168.1.50 51234 192.168.1.11 ssh"), err: "section ssh"},
		{name: "SSH_CONNECTION with port 0", out: factsOutput(m, "ssh\n192.168.1.50 51234 192.168.1.11 0"), err: "port 0 out of range"},
		{name: "SSH_CONNECTION with port 65558", out: factsOutput(m, "ssh\n192.168.1.50 51234 192.168.1.11 65558"), err: "port 65558 out of range"},
		{name: "lock with a time that is not a number", out: factsOutput(m, "lock\nrun=8f3a61c2d9e04b7a\nsince=yesterday"), err: `section lock: since is "yesterday"`},
		{name: "generations of two numbers", out: factsOutput(m, "generation-v4\n3\n*filter\nCOMMIT", "generation-v6\n2\n*filter\nCOMMIT"), err: "section generation-v6: generation 2, after generation 3"},
		{name: "generation that is not a number", out: factsOutput(m, "generation\nfour"), err: "section generation"},
		{name: "ip6tables-save error", out: factsOutput(m, "v6\n*filter", "v6-error\nip6tables-save: unable to initialize table 'filter'"), err: "section v6: ip6tables-save failed: ip6tables-save: unable to initialize table 'filter'"},
		{name: "live rules that do not parse", out: factsOutput(m, "v4\n*filter\n:INPUT DROP [0:0]"), err: "section v4"},
		{name: "generation number that is not a number", out: factsOutput(m, "generation-v4\nx\n*filter\nCOMMIT"), err: "section generation-v4"},
		{name: "history line that is not JSON", out: factsOutput(m, "history\n{\"number\":1,"), err: "section history: generation metadata"},
		{name: "history line without outcome", out: factsOutput(m, `history`+"\n"+`{"number":1,"kind":"apply"}`), err: "section history"},
		{
			name: "lock",
			out:  factsOutput(m, "lock\nrun=8f3a61c2d9e04b7a\noperator=it's; $(id)\nsince=1764061200\nexpires=1764061800"),
			check: func(t *testing.T, f *Facts) {
				want := &Lock{Run: "8f3a61c2d9e04b7a", Operator: "it's; $(id)", Since: time.Unix(1764061200, 0).UTC(), Expires: time.Unix(1764061800, 0).UTC()}
				if !reflect.DeepEqual(f.Lock, want) {
					t.Errorf("Lock = %+v, want %+v", f.Lock, want)
				}
			},
		},
		{
			name: "free lock",
			out:  factsOutput(m, "lock"),
			check: func(t *testing.T, f *Facts) {
				if f.Lock != nil {
					t.Errorf("Lock = %+v, want nil", f.Lock)
				}
			},
		},
		{
			name: "generation not on the host is not found",
			out:  factsOutput(m, "generation-v4\n7\nerror", "generation-v6\n7\nerror"),
			check: func(t *testing.T, f *Facts) {
				if want := (&GenerationRules{Number: 7}); !reflect.DeepEqual(f.RollbackTo, want) {
					t.Errorf("RollbackTo = %+v, want %+v", f.RollbackTo, want)
				}
			},
		},
		{
			name: "generation with only its IPv4 rules is not found",
			out:  factsOutput(m, "generation-v4\n7\n*filter\nCOMMIT", "generation-v6\n7\nerror"),
			check: func(t *testing.T, f *Facts) {
				if want := (&GenerationRules{Number: 7, V4: "*filter\nCOMMIT\n"}); !reflect.DeepEqual(f.RollbackTo, want) {
					t.Errorf("RollbackTo = %+v, want %+v", f.RollbackTo, want)
				}
			},
		},
		{
			name: "name without addresses",
			out:  factsOutput(m, "name\nbroken.example.com\nnot-an-address STREAM broken.example.com"),
			check: func(t *testing.T, f *Facts) {
				if got, want := f.NameErrors["broken.example.com"], "has no addresses on the host"; got != want {
					t.Errorf("NameErrors[broken.example.com] = %q, want %q", got, want)
				}
			},
		},
		{
			name: "canonical name that differs only in case and the final dot is no CNAME",
			out:  factsOutput(m, "name\napi.example.com\n198.51.100.20   STREAM API.Example.com.\n198.51.100.20   DGRAM"),
			check: func(t *testing.T, f *Facts) {
				want := firewall.Resolution{Name: "api.example.com", Addrs: addrs("198.51.100.20")}
				if got := f.Names["api.example.com"]; !reflect.DeepEqual(got, want) {
					t.Errorf("Names[api.example.com] = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "unknown section is ignored",
			out:  factsOutput(m, "kernel\n6.6.51+rpt-rpi-v8", "os\nDebian GNU/Linux 12 (bookworm)", "generation\n1"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFacts(tc.out, m)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseFacts(%q): got error %v, want one saying %q", tc.out, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFacts(%q): %v", tc.out, err)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestNeedsIptables(t *testing.T) {
	all := []string{"iptables-restore", "ip6tables-restore", "netfilter-persistent"}
	tests := []struct {
		name  string
		tools []string
		want  bool
	}{
		{"all three installed", all, false},
		{"fresh pi", nil, true},
		{"no netfilter-persistent", all[:2], true},
		{"no ip6tables-restore", []string{all[0], all[2]}, true},
		{"no iptables-restore", all[1:], true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &Facts{Tools: map[string]bool{}}
			for _, tool := range tc.tools {
				f.Tools[tool] = true
			}
			if got := f.NeedsIptables(); got != tc.want {
				t.Errorf("NeedsIptables with %v = %v, want %v", tc.tools, got, tc.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	base := func() *Facts {
		marker, out := readFactsCase(t, "provisioned")
		f, err := ParseFacts(out, marker)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f2b, err := firewall.NewForeign(nil, []string{"fail2ban"})
	if err != nil {
		t.Fatal(err)
	}
	want := base().Fingerprint(f2b)
	if len(want) != 64 {
		t.Fatalf("Fingerprint = %q, want 64 hex digits", want)
	}
	tests := []struct {
		name    string
		change  func(f *Facts)
		changes bool
	}{
		{"IPv4 live rules", func(f *Facts) { f.LiveText[firewall.IPv4] = "" }, true},
		{"IPv6 live rules", func(f *Facts) { f.LiveText[firewall.IPv6] = "" }, true},
		{"generation", func(f *Facts) { f.Generation = 5 }, true},
		{"IPv4 persisted rules", func(f *Facts) { f.Persisted[firewall.IPv4] = "none" }, true},
		{"IPv6 persisted rules", func(f *Facts) { f.Persisted[firewall.IPv6] = "none" }, true},
		{"IPv4 and IPv6 live rules swapped", func(f *Facts) {
			f.LiveText[firewall.IPv4], f.LiveText[firewall.IPv6] = f.LiveText[firewall.IPv6], f.LiveText[firewall.IPv4]
		}, true},
		// Others' rules are not piwall's: fail2ban banning an address
		// changes nothing piwall planned against.
		{"a fail2ban ban", func(f *Facts) {
			f.LiveText[firewall.IPv4] = strings.Replace(f.LiveText[firewall.IPv4], "COMMIT",
				"-A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT", 1)
			f.LiveText[firewall.IPv4] = strings.Replace(f.LiveText[firewall.IPv4], ":OUTPUT DROP [0:0]\n", ":OUTPUT DROP [0:0]\n:f2b-sshd - [0:0]\n", 1)
		}, false},
		{"nothing", func(*Facts) {}, false},
		{"lock", func(f *Facts) { f.Lock = &Lock{Run: "1"} }, false},
		{"operator's address", func(f *Facts) { f.Operator = netip.MustParseAddr("192.168.1.51") }, false},
		{"tools", func(f *Facts) { f.Tools = map[string]bool{} }, false},
		{"names", func(f *Facts) { f.Names = nil }, false},
		{"resolvers", func(f *Facts) { f.Resolvers = nil }, false},
		{"history", func(f *Facts) { f.History = []Generation{{Number: 9, Outcome: "applied"}} }, false},
		{"rollback generation", func(f *Facts) { f.RollbackTo = &GenerationRules{Number: 3} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.change(f)
			if got := f.Fingerprint(f2b); (got != want) != tc.changes {
				t.Errorf("Fingerprint after changing %s = %s, was %s; want it changed: %v", tc.name, got, want, tc.changes)
			}
		})
	}
}

// TestFactsScriptSyntax checks the script /bin/sh gets, whatever the names
// asked for hold: each name reaches the shell only quoted.
func TestFactsScriptSyntax(t *testing.T) {
	hostile := "it's; rm -rf / $(id)"
	for _, tc := range []struct {
		name string
		req  FactsRequest
	}{
		{"nothing more", FactsRequest{}},
		{"names", FactsRequest{Names: []string{"dashboard.example.com", "api.example.com"}}},
		{"hostile name", FactsRequest{Names: []string{hostile, "`id`", "$HOME", "a\nb"}}},
		{"previous generation and history", FactsRequest{Rollback: Previous, History: true}},
		{"generation 2", FactsRequest{Rollback: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := FactsScript(recordMarker, tc.req)
			shSyntax(t, script)
			if !strings.HasSuffix(script, "sec end\n") {
				t.Errorf("the script does not end with the end section:\n%s", script)
			}
			for _, n := range tc.req.Names {
				if q := Quote(n); !strings.Contains(script, q) {
					t.Errorf("the script does not hold name %q quoted as %s", n, q)
				}
			}
			if rest := strings.ReplaceAll(script, Quote(hostile), ""); strings.Contains(rest, "rm -rf /") || strings.Contains(rest, "$(id)") {
				t.Errorf("the hostile name appears unquoted:\n%s", script)
			}
		})
	}
}

// shSyntax fails the test unless /bin/sh (dash on Debian, as on the Pis)
// parses script.
func shSyntax(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s\nscript:\n%s", err, out, script)
	}
}

// FuzzParseFacts feeds ParseFacts arbitrary outputs and markers: it must
// not panic, and facts it returns must be usable as they are.
func FuzzParseFacts(f *testing.F) {
	requireSeeds(f, "FuzzParseFacts", 6)
	f.Fuzz(func(t *testing.T, out, marker string) {
		facts, err := ParseFacts(out, marker)
		if err != nil {
			if facts != nil {
				t.Errorf("ParseFacts returned facts with error %v", err)
			}
			return
		}
		if facts.Tools == nil || facts.Live == nil || facts.LiveText == nil || facts.Persisted == nil ||
			facts.Names == nil || facts.NameErrors == nil {
			t.Fatalf("ParseFacts returned nil maps: %+v", facts)
		}
		for fam, rs := range facts.Live {
			if rs == nil {
				t.Errorf("Live[%v] is nil", fam)
			}
		}
		for name, r := range facts.Names {
			if r.Name != name || len(r.Addrs) == 0 {
				t.Errorf("Names[%q] = %+v, want its name and an address", name, r)
			}
		}
		if facts.Operator.IsValid() && (facts.SSHPort < 1 || facts.SSHPort > 65535) {
			t.Errorf("SSHPort = %d", facts.SSHPort)
		}
		if g := facts.RollbackTo; g != nil && g.Found != (g.V4 != "" && g.V6 != "") {
			t.Errorf("RollbackTo = %+v: found, but without both rulesets", g)
		}
		_ = facts.Fingerprint(facts.Foreign)
		_ = facts.NeedsIptables()
	})
}

// FuzzParseGeneration feeds ParseGeneration arbitrary metadata: what it
// accepts must survive writing it out and reading it back unchanged.
func FuzzParseGeneration(f *testing.F) {
	requireSeeds(f, "FuzzParseGeneration", 6)
	f.Fuzz(func(t *testing.T, data string) {
		g, err := ParseGeneration([]byte(data))
		if err != nil {
			return
		}
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", g, err)
		}
		again, err := ParseGeneration(b)
		if err != nil {
			t.Fatalf("ParseGeneration(%s), written from %+v: %v", b, g, err)
		}
		if !sameGeneration(g, again) {
			t.Errorf("round trip: got %+v, want %+v (written as %s)", again, g, b)
		}
	})
}

func sameGeneration(a, b Generation) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b
}

// requireSeeds fails the fuzz test when its seed corpus under testdata/
// has fewer than min files: a fuzz test pointed at a directory that moved
// must not pass by fuzzing nothing.
func requireSeeds(f *testing.F, name string, min int) {
	f.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	if len(entries) < min {
		f.Fatalf("seed corpus testdata/fuzz/%s has %d files, want at least %d", name, len(entries), min)
	}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// normalizeBySed runs the scripts' normalize on raw as prepare does on the
// output of iptables-save: printf '%s\n' "$out" | normalize.
func normalizeBySed(t *testing.T, raw string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", scriptFile("common.sh")+`out=$(cat); printf '%s\n' "$out" | normalize`)
	cmd.Stdin = strings.NewReader(raw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("normalize by sed: %v", err)
	}
	return string(out)
}

func TestNormalizeSave(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"nothing loaded", "", "\n"},
		{"comments and counters", "# Generated by iptables-save v1.8.9 (nf_tables) on Wed Nov 25 09:00:00 2026\n*filter\n:INPUT DROP [120:10452]\n:piwall-x - [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n# Completed on Wed Nov 25 09:00:00 2026\n\n\n",
			"*filter\n:INPUT DROP [0:0]\n:piwall-x - [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"},
		{"counters only on chain lines", "-A INPUT -m comment --comment \":X Y [1:2]\" -j ACCEPT\n:A B [1:2] x\n", "-A INPUT -m comment --comment \":X Y [1:2]\" -j ACCEPT\n:A B [1:2] x\n"},
		{"only comments", "# a\n# b\n", ""},
		{"no final newline", "*filter\nCOMMIT", "*filter\nCOMMIT\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizeSave(tc.raw); got != tc.want {
				t.Errorf("NormalizeSave(%q) = %q, want %q", tc.raw, got, tc.want)
			}
			if got := normalizeBySed(t, tc.raw); got != tc.want {
				t.Errorf("the scripts' normalize of %q = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

// FuzzNormalizeSave checks that NormalizeSave makes of any output what the
// scripts' sed makes of it: the plan's digests and prepare's must agree.
func FuzzNormalizeSave(f *testing.F) {
	for _, file := range []string{"provisioned", "docker-chains", "lock-held"} {
		m, out := readFactsCase(f, file)
		for _, sec := range strings.Split(out, m+" ") {
			if name, body, _ := strings.Cut(sec, "\n"); name == "v4" || name == "v6" {
				f.Add(body)
			}
		}
	}
	f.Add(":INPUT ACCEPT [1:2]\n:OUTPUT ACCEPT []\n:X [3:4]\n:Y Z [5:6]\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsRune(raw, 0) {
			t.Skip("the shell drops NUL bytes; iptables-save prints none")
		}
		if got, want := NormalizeSave(raw), normalizeBySed(t, raw); got != want {
			t.Errorf("NormalizeSave(%q) = %q, the scripts' normalize %q", raw, got, want)
		}
	})
}

func TestRouteDev(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"192.168.1.50 dev eth0 src 192.168.1.11 uid 1000 \\    cache "}, "eth0"},
		{[]string{"100.101.1.2 dev tailscale0 table 52 src 100.64.0.7 uid 0 \\    cache "}, "tailscale0"},
		{[]string{"RTNETLINK answers: Network is unreachable"}, ""},
		{nil, ""},
	} {
		if got := routeDev(tc.lines); got != tc.want {
			t.Errorf("routeDev(%q) = %q, want %q", tc.lines, got, tc.want)
		}
	}
}

// TestOwnOfIsOwnText holds the scripts' own_of, run by /bin/sh with this
// machine's sed and grep (GNU, as on Debian and Raspberry Pi OS), to
// firewall's OwnText on the layouts of modules/firewall/testdata/foreign:
// the host and piwall split a table into the same lines. One declaration,
// every owner and firewalld's INPUT_ZONES, covers them all.
func TestOwnOfIsOwnText(t *testing.T) {
	saves, err := filepath.Glob(filepath.Join("firewall", "testdata", "foreign", "*.save"))
	if err != nil || len(saves) < 3 {
		t.Fatalf("layouts: %q, %v", saves, err)
	}
	for _, path := range saves {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(path, ".save") + ".own")
			if err != nil {
				t.Fatal(err)
			}
			save := NormalizeSave(string(raw))
			live, err := firewall.Parse(save)
			if err != nil {
				t.Fatal(err)
			}
			f, err := firewall.NewForeign([]string{"INPUT_ZONES"}, firewall.Owners(), live)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.OwnText(save); got != string(want) {
				t.Errorf("OwnText:\n%s\nwant:\n%s", got, want)
			}
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "foreign.re"), f.Text())
			cmd := exec.Command("/bin/sh", "-c", "rundir="+Quote(dir)+"\n"+scriptFile("common.sh")+"own_of")
			cmd.Stdin = strings.NewReader(save)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("own_of: %v", err)
			}
			if string(out) != string(want) {
				t.Errorf("own_of:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}
