package modules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/piwall/piwall/modules/firewall"
)

// The saved-plan tests: what `piwall plan --out` writes loads back the
// same and gives the same changes; every way a file can be wrong has its
// own error; and testdata/savedplan/release-1.json, written by the first
// release's writer (cmd/piwall's writePlanFile) for the hosts of
// testdata/site.hcl, still loads. That file is a fixed fixture: never
// regenerate it with this code, since it stands for files already saved.
//
//	go test ./modules -run 'SavedPlan|IsPlanSource'
//	go test ./modules -run '^$' -fuzz FuzzParseSavedPlan -fuzztime 60s

// plannedSets are the change sets of one plan run over testdata/site.hcl:
// pi-01 already applied, pi-02 fresh with Docker's chains, pi-09 whose
// rules would lock the operator out, and a host that failed (nil).
func plannedSets(t *testing.T) []*ChangeSet {
	t.Helper()
	var sets []*ChangeSet
	for _, c := range []struct{ host, facts string }{{"pi-01", "provisioned"}, {"pi-02", "docker-chains"}, {"", ""}, {"pi-09", "provisioned"}} {
		if c.host == "" {
			sets = append(sets, nil)
			continue
		}
		cs, err := NewChangeSet(siteHost(t, c.host), recordedFacts(t, c.facts))
		if err != nil {
			t.Fatalf("NewChangeSet(%s, %s): %v", c.host, c.facts, err)
		}
		sets = append(sets, cs)
	}
	return sets
}

func TestSavedPlanRoundTrip(t *testing.T) {
	sets := plannedSets(t)
	sp := NewSavedPlan("testdata/site.hcl", "2aaf82568f111b40", sets)
	if got, want := savedHosts(sp), []string{"pi-01", "pi-02", "pi-09"}; !slices.Equal(got, want) {
		t.Fatalf("NewSavedPlan hosts: got %q, want %q (the failed host left out)", got, want)
	}
	b, err := sp.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !bytes.HasSuffix(b, []byte("}\n")) || !bytes.Contains(b, []byte("\n  \"plan_path\": ")) {
		t.Errorf("Marshal: want indented JSON ending in a newline, got:\n%s", b)
	}
	back, err := ParseSavedPlan(b, "plan.json")
	if err != nil {
		t.Fatalf("ParseSavedPlan(Marshal()): %v", err)
	}
	if !reflect.DeepEqual(back, sp) {
		t.Fatalf("ParseSavedPlan(Marshal()):\ngot  %+v\nwant %+v", back, sp)
	}
	for _, want := range sets {
		if want == nil {
			continue
		}
		t.Run(want.Host, func(t *testing.T) {
			got, err := back.ChangeSet(want.Host, want.Facts)
			if err != nil {
				t.Fatalf("ChangeSet(%s): %v", want.Host, err)
			}
			sameChangeSet(t, got, want)
			if got.Source != sp.PlanDigest {
				t.Errorf("Source = %q, want the saved plan's digest %q", got.Source, sp.PlanDigest)
			}
		})
	}
}

// sameChangeSet compares what apply acts on in two change sets of one host.
func sameChangeSet(t *testing.T, got, want *ChangeSet) {
	t.Helper()
	if got.Host != want.Host || got.Install != want.Install || got.Fingerprint != want.Fingerprint ||
		got.ExpectV4 != want.ExpectV4 || got.ExpectV6 != want.ExpectV6 {
		t.Errorf("host %q install %v fingerprint %s expect %s %s;\nwant host %q install %v fingerprint %s expect %s %s",
			got.Host, got.Install, got.Fingerprint, got.ExpectV4, got.ExpectV6,
			want.Host, want.Install, want.Fingerprint, want.ExpectV4, want.ExpectV6)
	}
	if g, w := got.Desired.V4.Text()+got.Desired.V6.Text(), want.Desired.V4.Text()+want.Desired.V6.Text(); g != w {
		t.Errorf("desired rulesets:\n%s\nwant:\n%s", g, w)
	}
	if g, w := changesText(got), changesText(want); g != w {
		t.Errorf("changes:\n%s\nwant:\n%s", g, w)
	}
	if g, w := errText(got.Lockout), errText(want.Lockout); g != w {
		t.Errorf("Lockout = %q, want %q", g, w)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func savedHosts(sp *SavedPlan) []string {
	var out []string
	for _, h := range sp.Hosts {
		out = append(out, h.Host)
	}
	return out
}

func TestSavedPlanChangeSetRefuses(t *testing.T) {
	sp := NewSavedPlan("testdata/site.hcl", "2aaf82568f111b40", plannedSets(t))
	tests := []struct {
		name   string
		host   string
		change func(*Facts)
		err    string
		is     error
		hint   string
	}{
		{
			name: "the live rules changed", host: "pi-01",
			change: func(f *Facts) {
				f.LiveText[firewall.IPv4] = strings.Replace(f.LiveText[firewall.IPv4], "COMMIT", "-A INPUT -j DROP\nCOMMIT", 1)
			},
			err: "the host changed since the plan was saved", is: ErrHostChanged, hint: "run piwall plan --out again",
		},
		{
			name: "another apply since", host: "pi-02",
			change: func(f *Facts) { f.Generation++ },
			err:    "the host changed since the plan was saved", is: ErrHostChanged, hint: "run piwall plan --out again",
		},
		{
			name: "a host the saved plan does not list", host: "pi-03",
			err: "the saved plan has no rulesets for this host", hint: "it failed or was not a target when the plan was saved: run piwall plan --out again",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := recordedFacts(t, "provisioned")
			if tc.host == "pi-02" {
				f = recordedFacts(t, "docker-chains")
			}
			if tc.change != nil {
				tc.change(f)
			}
			cs, err := sp.ChangeSet(tc.host, f)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("ChangeSet(%s) = %v, %v; want error %q", tc.host, cs, err, tc.err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if got := Hints(err); !slices.Equal(got, []string{tc.hint}) {
				t.Errorf("Hints = %q, want %q", got, tc.hint)
			}
		})
	}
}

func TestParseSavedPlanErrors(t *testing.T) {
	good := savedPlanFixture(t)
	// host replaces the first host's entry of the fixture with entry.
	host := func(entry string) string {
		start := strings.Index(good, "    {\n")
		end := strings.Index(good, "\n    },\n") + len("\n    }")
		return good[:start] + entry + good[end:]
	}
	tests := []struct {
		name string
		data string
		err  string // the error after "saved plan plan.json: "
		hint string // "" for none
	}{
		{name: "empty file", data: "\n", err: "the file is empty", hint: notSavedPlanHint},
		{name: "a plan, not a saved plan", data: "host \"pi-01\" {\n  groups = [\"kiosk\"]\n}\n",
			err: "corrupt, not JSON: invalid character 'h' looking for beginning of value", hint: notSavedPlanHint},
		{name: "corrupt JSON", data: `{"format": 1, "hosts": [}`,
			err: "corrupt, not JSON: invalid character '}' looking for beginning of value", hint: notSavedPlanHint},
		{name: "cut short", data: good[:len(good)/2], err: "the file is cut short: unexpected end of JSON input", hint: "run piwall plan --out again"},
		{name: "cut short after the last brace's line", data: strings.TrimSuffix(good, "}\n"),
			err: "the file is cut short: unexpected end of JSON input", hint: "run piwall plan --out again"},
		{name: "JSON of another shape", data: `{"format": 1, "plan_path": ".", "plan_digest": "ab", "hosts": {"pi-01": {}}}`,
			err: "corrupt: json: cannot unmarshal object into Go struct field SavedPlan.hosts of type []modules.SavedHost", hint: notSavedPlanHint},
		{name: "JSON, not an object", data: `["format", 1]`,
			err: "corrupt: json: cannot unmarshal array into Go value of type struct { Format json.RawMessage \"json:\\\"format\\\"\" }", hint: notSavedPlanHint},
		{name: "a future format", data: `{"format": 2, "plan": {"path": "."}, "hosts": {"pi-01": "..."}}`,
			err: "written by a newer piwall: format 2, this piwall reads 1", hint: "apply it with the piwall that saved it, or run piwall plan --out again with this one"},
		{name: "no format", data: `{"plan_path": ".", "plan_digest": "ab", "hosts": []}`, err: "no format version: not a saved plan", hint: notSavedPlanHint},
		{name: "format zero", data: `{"format": 0}`, err: "no format version: not a saved plan", hint: notSavedPlanHint},
		{name: "format not a number", data: `{"format": "1"}`, err: "no format version: not a saved plan", hint: notSavedPlanHint},
		{name: "no plan digest", data: strings.Replace(good, `"plan_digest": "2aaf82568f111b40"`, `"plan_digest": ""`, 1),
			err: "no plan_digest: whether the plan changed since cannot be told", hint: "run piwall plan --out again"},
		{name: "no plan path", data: strings.Replace(good, `"plan_path": "testdata/site.hcl",`, ``, 1),
			err: "no plan_path: the plan it came from is unknown", hint: "run piwall plan --out again"},
		{name: "a host listed twice", data: strings.Replace(good, `"host": "pi-02"`, `"host": "pi-01"`, 1),
			err: "host pi-01 is listed twice", hint: "the file was edited or corrupted: run piwall plan --out again"},
		{name: "a host without a name", data: host(`    {"fingerprint": "08c3", "v4": "*filter\nCOMMIT\n", "v6": "*filter\nCOMMIT\n"}`), err: "host 1 has no name"},
		{name: "a host without a fingerprint", data: host(`    {"host": "pi-01", "v4": "*filter\nCOMMIT\n", "v6": "*filter\nCOMMIT\n"}`), err: "host pi-01 has no fingerprint"},
		{name: "IPv4 rules that do not parse", data: host(`    {"host": "pi-01", "fingerprint": "08c3", "v4": "*filter\n:INPUT DROP [0:0]\n", "v6": "*filter\nCOMMIT\n"}`),
			err: `host pi-01, IPv4 rules: iptables-save output, line 3: table filter has no COMMIT: ""`, hint: "the file was edited or corrupted: run piwall plan --out again"},
		{name: "IPv6 rules missing", data: host(`    {"host": "pi-01", "fingerprint": "08c3", "v4": "*filter\nCOMMIT\n"}`),
			err: "host pi-01, IPv6 rules: no tables", hint: "the file was edited or corrupted: run piwall plan --out again"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := ParseSavedPlan([]byte(tc.data), "plan.json")
			want := "saved plan plan.json: " + tc.err
			if err == nil || err.Error() != want {
				t.Fatalf("ParseSavedPlan = %+v, %v;\nwant error %q", sp, err, want)
			}
			var hints []string
			if tc.hint != "" {
				hints = []string{tc.hint}
			}
			if got := Hints(err); !slices.Equal(got, hints) {
				t.Errorf("Hints = %q, want %q", got, hints)
			}
			if strings.Contains(err.Error(), "hint") {
				t.Errorf("error text %q carries its hint; hints go through WithHint", err)
			}
		})
	}
}

// savedPlanFixture is the saved plan the first release wrote.
func savedPlanFixture(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "savedplan", "release-1.json"))
	if err != nil {
		t.Fatalf("the saved plan of the first release: %v", err)
	}
	return string(b)
}

func TestSavedPlanOfTheFirstRelease(t *testing.T) {
	path := filepath.Join("testdata", "savedplan", "release-1.json")
	sp, err := ReadSavedPlan(path)
	if err != nil {
		t.Fatalf("ReadSavedPlan: %v", err)
	}
	if sp.Format != 1 || sp.PlanPath != "testdata/site.hcl" || sp.PlanDigest != "2aaf82568f111b40" {
		t.Errorf("format %d, plan_path %q, plan_digest %q; want 1, testdata/site.hcl, 2aaf82568f111b40", sp.Format, sp.PlanPath, sp.PlanDigest)
	}
	if got, want := savedHosts(sp), []string{"pi-01", "pi-02"}; !slices.Equal(got, want) {
		t.Errorf("hosts %q, want %q (pi-09 failed when it was saved)", got, want)
	}
	// This piwall writes the same bytes: files of both read the same.
	b, err := sp.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if want := savedPlanFixture(t); string(b) != want {
		t.Errorf("Marshal of the first release's saved plan:\n%s\nwant it unchanged:\n%s", b, want)
	}
	// The first release saved others' rules (pi-02's Docker chains) with
	// piwall's: a host that has any is refused, and planned again.
	if _, err := sp.ChangeSet("pi-02", recordedFacts(t, "docker-chains")); !errors.Is(err, ErrHostChanged) {
		t.Errorf("ChangeSet(pi-02): %v, want %v", err, ErrHostChanged)
	}
	for _, c := range []struct{ host, facts string }{{"pi-01", "provisioned"}} {
		t.Run(c.host, func(t *testing.T) {
			want, err := NewChangeSet(siteHost(t, c.host), recordedFacts(t, c.facts))
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			got, err := sp.ChangeSet(c.host, recordedFacts(t, c.facts))
			if err != nil {
				t.Fatalf("ChangeSet: %v", err)
			}
			sameChangeSet(t, got, want)
		})
	}
	if _, err := sp.ChangeSet("pi-09", recordedFacts(t, "provisioned")); err == nil {
		t.Errorf("ChangeSet(pi-09): no error for a host the saved plan does not list")
	}
}

func TestIsPlanSource(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "plan.json")
	writeFile(t, saved, "{}\n")
	brace := filepath.Join(dir, "brace.hcl")
	writeFile(t, brace, "{ not HCL, but named as a plan\n")
	tests := []struct {
		name, path string
		want       bool
	}{
		{"a directory", dir, true},
		{"the working directory", ".", true},
		{"a plan file", filepath.Join("testdata", "site.hcl"), true},
		{"a plan file in capitals", "SITE.HCL", true},
		{"a plan file that starts with a brace", brace, true},
		{"a plan file that does not exist yet", filepath.Join(dir, "missing.hcl"), true},
		{"a saved plan", saved, false},
		{"a saved plan that does not exist", filepath.Join(dir, "missing.json"), false},
		{"a saved plan without extension", filepath.Join(dir, "plan"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPlanSource(tc.path); got != tc.want {
				t.Errorf("IsPlanSource(%q) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
	t.Run("a saved plan that cannot be read is an error", func(t *testing.T) {
		sp, err := ReadSavedPlan(filepath.Join(dir, "missing.json"))
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading saved plan: open ") {
			t.Errorf("ReadSavedPlan(missing) = %v, %v; want the read error", sp, err)
		}
		if got, want := Hints(err), []string{"a plan is a .hcl file or a directory of them; a saved plan, the file piwall plan --out wrote"}; !slices.Equal(got, want) {
			t.Errorf("Hints = %q, want %q", got, want)
		}
	})
}

func FuzzParseSavedPlan(f *testing.F) {
	requireSeeds(f, "FuzzParseSavedPlan", 6)
	f.Add([]byte(savedPlanFixture(f)))
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := ParseSavedPlan(data, "plan.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "saved plan plan.json: ") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		b, err := sp.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := ParseSavedPlan(b, "plan.json")
		if err != nil {
			t.Fatalf("ParseSavedPlan(Marshal(ParseSavedPlan(x))): %v\nx: %q\nMarshal: %s", err, data, b)
		}
		if !reflect.DeepEqual(again, sp) {
			t.Fatalf("round trip differs:\nx:    %q\nonce: %+v\nback: %+v", data, sp, again)
		}
		if b2, _ := again.Marshal(); !bytes.Equal(b2, b) {
			t.Fatalf("Marshal differs after a round trip:\n%s\nthen:\n%s", b, b2)
		}
	})
}
