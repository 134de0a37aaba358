package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/inventory and testdata/validate")

// TestInventory runs piwall inventory on each case of testdata/inventory:
// a plan (site.hcl), the home directory its ssh_config comes from (home/),
// the system's ssh_config (system_ssh_config), and for each NAME.args (the
// arguments after the plan) the exit code, stdout and stderr in
// NAME.golden, the temporary home directory written $HOME. -update
// rewrites the golden files.
//
//	go test ./cmd/piwall -run Inventory [-update]
func TestInventory(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "inventory", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 2 {
		t.Fatalf("testdata/inventory holds %d cases, want at least 2", len(cases))
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			home := t.TempDir()
			copyTree(t, filepath.Join(dir, "home"), home)
			t.Setenv("HOME", home)
			old := systemSSHConfig
			systemSSHConfig = filepath.Join(dir, "system_ssh_config")
			t.Cleanup(func() { systemSSHConfig = old })
			argFiles, _ := filepath.Glob(filepath.Join(dir, "*.args"))
			if len(argFiles) == 0 {
				t.Fatal("no NAME.args in the case")
			}
			for _, af := range argFiles {
				name := strings.TrimSuffix(filepath.Base(af), ".args")
				t.Run(name, func(t *testing.T) {
					b, err := os.ReadFile(af)
					if err != nil {
						t.Fatal(err)
					}
					args := append([]string{"inventory", filepath.Join(dir, "site.hcl")}, strings.Fields(string(b))...)
					code, stdout, stderr := runPiwall(t, args...)
					got := fmt.Sprintf("exit %d\n-- stdout --\n%s-- stderr --\n%s", code, stdout, stderr)
					got = strings.ReplaceAll(got, home, "$HOME")
					golden := strings.TrimSuffix(af, ".args") + ".golden"
					if *update {
						if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					want, err := os.ReadFile(golden)
					if err != nil {
						t.Fatalf("%v (go test ./cmd/piwall -run Inventory -update writes it)", err)
					}
					if got != string(want) {
						t.Errorf("piwall %s:\n%s\nwant (%s):\n%s", strings.Join(args[1:], " "), got, golden, want)
					}
					if strings.Contains(string(b), "--json") && code == 0 {
						checkInventoryJSON(t, stdout)
					}
				})
			}
		})
	}
}

// checkInventoryJSON holds each host of inventory --json to the field
// names README.md promises.
func checkInventoryJSON(t *testing.T, text string) {
	t.Helper()
	var doc struct {
		FormatVersion string           `json:"format_version"`
		Hosts         []map[string]any `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil || doc.FormatVersion != "1" || len(doc.Hosts) == 0 {
		t.Fatalf("inventory --json: %v, %+v", err, doc)
	}
	for _, h := range doc.Hosts {
		for key, kind := range map[string]reflect.Kind{
			"host": reflect.String, "hostname": reflect.String, "user": reflect.String, "port": reflect.Float64,
			"identity_files": reflect.Slice, "proxy_jump": reflect.String, "proxy_command": reflect.String,
			"user_known_hosts_files": reflect.Slice, "groups": reflect.Slice, "allowlists": reflect.Slice,
			"proxy_jump_hops": reflect.Slice, "host_key_alias": reflect.String,
		} {
			if v, ok := h[key]; !ok || v == nil || reflect.TypeOf(v).Kind() != kind {
				t.Errorf("host %v: %q is %v, want a %v", h["host"], key, v, kind)
			}
		}
		hops, _ := h["proxy_jump_hops"].([]any)
		jump, _ := h["proxy_jump"].(string)
		if (jump == "") != (len(hops) == 0) || (jump != "" && len(strings.Split(jump, ",")) != len(hops)) {
			t.Errorf("host %v: proxy_jump %q with %d hops", h["host"], jump, len(hops))
		}
	}
}

// copyTree copies the files under src into dst, private to the user as
// ssh wants them.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
