package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestInspectArguments parses the arguments of check, status and logs,
// flags before and after the positional ones.
func TestInspectArguments(t *testing.T) {
	std := stdio{in: strings.NewReader(""), out: io.Discard, errOut: io.Discard}
	t.Run("check", func(t *testing.T) {
		a, err := parseCheck(commandNamed(t, "check"), []string{"site.hcl", "--limit", "pi-0*", "--json"}, std)
		if err != nil || a.path != "site.hcl" || a.limit != "pi-0*" || !a.json {
			t.Errorf("check: %+v, %v", a, err)
		}
		if _, err := parseCheck(commandNamed(t, "check"), []string{"a.hcl", "b.hcl"}, std); err == nil {
			t.Errorf("check with two plans: no error")
		}
	})
	t.Run("status", func(t *testing.T) {
		a, err := parseStatus(commandNamed(t, "status"), []string{"--detailed", "site.hcl"}, std)
		if err != nil || a.path != "site.hcl" || !a.detailed {
			t.Errorf("status: %+v, %v", a, err)
		}
	})
	t.Run("logs", func(t *testing.T) {
		a, err := parseLogs(commandNamed(t, "logs"), []string{"pi-01", "--since", "10m", "--follow", "--plan", "site.hcl"}, std)
		if err != nil || a.host != "pi-01" || a.since != 10*time.Minute || !a.follow || a.plan != "site.hcl" {
			t.Errorf("logs: %+v, %v", a, err)
		}
		for _, args := range [][]string{{}, {"pi-01", "pi-02"}, {"pi-01", "--suggest", "--follow"}, {"pi-01", "--suggest", "--json"}} {
			if _, err := parseLogs(commandNamed(t, "logs"), args, std); err == nil {
				t.Errorf("logs %q: no error", args)
			}
		}
	})
}
