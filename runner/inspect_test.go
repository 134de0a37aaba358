package runner

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
)

// TestFleetCheck: each host is checked over one connection, the facts
// command and then the check script; a probe that failed, a host whose
// check script cannot run and one whose facts fail are each told apart.
func TestFleetCheck(t *testing.T) {
	refusedOut := Result{Stdout: modules.FormatProbes([]modules.ProbeResult{{ID: 1, Result: "refused", Took: 2}})}
	hosts := map[string]*fakeHost{
		"ok":       {},
		"refused":  {check: &refusedOut},
		"no-bash":  {check: &Result{Status: 127, Stderr: []byte("sudo: bash: command not found")}},
		"cut":      {check: &Result{Stdout: []byte("probe 1 open 3 \n")}},
		"no-facts": {facts: &Result{Status: 1, Stderr: []byte("boom")}},
	}
	d := newFakeDialer(t, hosts)
	fl := &Fleet{Dialer: d, Parallel: 2}
	var targets []inventory.Target
	for _, l := range []string{"ok", "refused", "no-bash", "cut", "no-facts"} {
		targets = append(targets, inventory.Target{Label: l, Address: "10.0.0.10", Port: 22, Sudo: true})
	}
	want := CheckWant{
		Request: func(inventory.Target) modules.FactsRequest { return modules.FactsRequest{} },
		Check: func(inventory.Target, *modules.Facts) (*modules.Check, error) {
			return &modules.Check{Probes: []modules.Probe{{ID: 1, Kind: modules.ProbeTCP, Addr: netip.MustParseAddr("10.0.0.11"), Port: 443, Expect: modules.ExpectReachable}}}, nil
		},
	}
	checks := fl.Check(context.Background(), targets, want)
	for _, tc := range []struct {
		host, err, transcript string
		ok                    bool
	}{
		{"ok", "", "1 facts check closed", true},
		{"refused", "", "1 facts check closed", false},
		{"no-bash", "no-bash: check: check: exit status 127: sudo: bash: command not found", "1 facts check closed", false},
		{"cut", "cut: check: check: the output ends early", "1 facts check closed", false},
		{"no-facts", "no-facts: facts: facts: exit status 1: boom", "1 facts closed", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			var h HostCheck
			for _, c := range checks {
				if c.Target.Label == tc.host {
					h = c
				}
			}
			if h.OK() != tc.ok {
				t.Errorf("OK() = %v, want %v (%+v)", h.OK(), tc.ok, h)
			}
			if tc.err == "" && h.Err != nil || tc.err != "" && (h.Err == nil || !strings.HasPrefix(h.Err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", h.Err, tc.err)
			}
			if tc.host == "no-bash" && len(modules.Hints(h.Err)) == 0 {
				t.Errorf("no hint for a host without bash")
			}
			if got := d.transcript(tc.host); got != tc.transcript {
				t.Errorf("transcript = %q, want %q", got, tc.transcript)
			}
		})
	}
}
