package plans

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParseAnsibleInventory feeds arbitrary bytes to the inventory parser,
// as INI and as YAML. Whatever the input, it must not panic, every
// diagnostic must name its problem and point inside the file, the same
// input must give the same inventory, and every host must be in all.
//
// The seeds are the inventories of TestAnsibleInventory and those in
// testdata/fuzz/FuzzParseAnsibleInventory (INI with errors, YAML with
// anchors). Run it with
//
//	go test ./plans -run '^$' -fuzz FuzzParseAnsibleInventory -fuzztime 60s
func FuzzParseAnsibleInventory(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseAnsibleInventory", "*"))
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/fuzz/FuzzParseAnsibleInventory: the glob matched nothing")
	}
	f.Add([]byte(ansibleINI), false)
	f.Add([]byte(ansibleYAML), true)
	f.Fuzz(func(t *testing.T, src []byte, asYAML bool) {
		file := "hosts.ini"
		if asYAML {
			file = "hosts.yml"
		}
		inv, diags := parseAnsibleInventory(file, src)
		for _, d := range diags {
			if strings.TrimSpace(d.Summary) == "" || strings.TrimSpace(d.Detail) == "" {
				t.Errorf("diagnostic without a summary or detail: %+v", d)
			}
			if d.Subject != nil {
				if msg := outside(*d.Subject, file, src); msg != "" {
					t.Errorf("%s: subject %s: %s", diagLine(d), d.Subject, msg)
				}
			}
		}
		if inv == nil {
			if !diags.HasErrors() {
				t.Fatal("no inventory and no error")
			}
			return
		}
		again, _ := parseAnsibleInventory(file, src)
		if got, want := hostNames(again), hostNames(inv); !slices.Equal(got, want) {
			t.Errorf("a second parse gives other hosts: %q, want %q", got, want)
		}
		for _, h := range inv.hosts {
			if h.name.V == "" {
				t.Errorf("a host without a name at %s", h.name.Range)
			}
			if msg := outside(h.name.Range, file, src); msg != "" {
				t.Errorf("host %q: range %s: %s", h.name.V, h.name.Range, msg)
			}
			groups := inv.memberships(h.name.V)
			if len(groups) == 0 || groups[0].name.V != "all" {
				t.Errorf("host %q: groups %v, want all first", h.name.V, groups)
			}
			for k, v := range inv.hostVars(h, groups) {
				if v.Range.Filename != "" {
					if msg := outside(v.Range, file, src); msg != "" {
						t.Errorf("host %q: var %s: range %s: %s", h.name.V, k, v.Range, msg)
					}
				}
			}
		}
	})
}

func hostNames(inv *ansibleInventory) []string {
	var out []string
	for _, h := range inv.hosts {
		out = append(out, h.name.V)
	}
	return out
}
