package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
)

func commandNamed(t *testing.T, name string) *command {
	t.Helper()
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no command %s", name)
	return nil
}

// Apply and rollback roll out the same way: the flags over the plan's
// rollout block (or piwall's defaults without a plan), into one engine.
func TestRolloutSettingsOfApplyAndRollback(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.hcl")
	src := `allowlist "a" {
  inbound {
    from  = ["192.0.2.0/24"]
    ports = ["tcp/22"]
  }
}
host "pi-01" {
  address    = "192.0.2.11"
  allowlists = ["a"]
}
rollout {
  parallel     = 7
  canary       = 2
  batch        = 3
  max_failures = 1
}
`
	if err := os.WriteFile(site, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := plans.Load(site, plans.Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	std := stdio{out: io.Discard, errOut: io.Discard}
	fleetOf := func(t *testing.T, name string, withPlan bool, args ...string) (int, runner.Rollout) {
		t.Helper()
		plan := p
		if !withPlan {
			plan = nil
		}
		var r *remote
		switch name {
		case "apply":
			a, err := parseApply(commandNamed(t, name), args, std)
			if err != nil {
				t.Fatal(err)
			}
			r = newRemote(plan, nil, &a.remoteFlags, &a.rollout)
		case "rollback":
			a, err := parseRollback(commandNamed(t, name), append([]string{"pi-01"}, args...), std)
			if err != nil {
				t.Fatal(err)
			}
			r = newRemote(plan, nil, &a.remoteFlags, &a.rollout)
		}
		return r.fleet.Parallel, r.fleet.Rollout
	}
	flags := []string{"--parallel", "3", "--canary", "0", "--batch", "4", "--max-failures", "5"}
	tests := []struct {
		name         string
		withPlan     bool
		args         []string
		wantParallel int
		want         runner.Rollout
	}{
		{"the plan's rollout block", true, nil, 7, runner.Rollout{Canary: 2, Batch: 3, MaxFailures: 1}},
		{"flags over the plan, --parallel below 10 included", true, flags, 3, runner.Rollout{Canary: 0, Batch: 4, MaxFailures: 5}},
		{"no plan: piwall's defaults", false, nil, plans.DefaultRollout.Parallel,
			runner.Rollout{Canary: plans.DefaultRollout.Canary, Batch: plans.DefaultRollout.Batch, MaxFailures: plans.DefaultRollout.MaxFailures}},
		{"no plan, flags", false, flags, 3, runner.Rollout{Canary: 0, Batch: 4, MaxFailures: 5}},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"apply", "rollback"} {
			t.Run(cmd+": "+tt.name, func(t *testing.T) {
				parallel, ro := fleetOf(t, cmd, tt.withPlan, tt.args...)
				if parallel != tt.wantParallel || ro != tt.want {
					t.Errorf("got parallel %d, rollout %+v; want %d, %+v", parallel, ro, tt.wantParallel, tt.want)
				}
			})
		}
	}
}

// TestRollbackPastABrokenPlan: an emergency rollback to an address does
// not depend on the .hcl files of the current directory: a plan there
// that does not load is said and passed over. Named with --plan, it stops
// the command before anything connects.
func TestRollbackPastABrokenPlan(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.hcl"), []byte("host \"x\" {\n  address = \n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("HOME", dir) // no keys: connecting fails at once, with no network
	t.Setenv("SSH_AUTH_SOCK", "")
	code, _, stderr := runPiwall(t, "rollback", "pi@127.0.0.1:1", "--yes")
	if code != 1 || !strings.Contains(stderr, "the plan in this directory does not load; HOST arguments are taken as addresses") ||
		!strings.Contains(stderr, "pi@127.0.0.1:1: connecting") {
		t.Errorf("rollback by address beside a broken plan: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runPiwall(t, "rollback", "pi@127.0.0.1:1", "--yes", "--plan", "site.hcl")
	if code != 1 || strings.Contains(stderr, "connecting") || !strings.Contains(stderr, "Invalid expression") {
		t.Errorf("rollback --plan with a broken plan: exit %d\n%s", code, stderr)
	}
}
