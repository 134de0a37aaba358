//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestE2EStatus reads a lab Pi's status after an apply, after traffic,
// after a rule made by hand and after rules.v4 edited by hand:
//
//	go test -count=1 -run 'TestE2EStatus' ./cmd/piwall -v
func TestE2EStatus(t *testing.T) {
	l := e2eLab(t, 1)
	p := l.Pis[0]
	site := labPlan(t, l, adminSSH, "", "20s")
	piwall(t, 0, "apply", site, "--yes")

	type state struct {
		State      string `json:"state"`
		Changes    int    `json:"changes"`
		Persist    string `json:"persisted_differs"`
		Generation *struct {
			Number   int    `json:"number"`
			Operator string `json:"operator"`
			Kind     string `json:"kind"`
		} `json:"generation"`
		BootOK   bool   `json:"boot_loads_rules"`
		Drops    uint64 `json:"drops"`
		Counters []struct {
			Rule    string `json:"rule"`
			Packets uint64 `json:"packets"`
		} `json:"counters"`
	}
	status := func(t *testing.T, code int) state {
		t.Helper()
		out, _ := piwall(t, code, "status", site, "--json", "--detailed")
		var doc struct {
			States []state `json:"states"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.States) != 1 {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return doc.States[0]
	}
	apiPackets := func(s state) uint64 {
		var n uint64
		for _, c := range s.Counters {
			if strings.Contains(c.Rule, "api.lab") {
				n += c.Packets
			}
		}
		return n
	}

	var before state
	t.Run("in sync after apply", func(t *testing.T) {
		out, _ := piwall(t, 0, "status", site)
		t.Logf("piwall status:\n%s", out)
		for _, want := range []string{"pi-01  in sync", "apply by ", "not armed", "free", "loads the rules", "Status: 1 in sync, 0 drift, 0 not persisted, 0 reverting, 0 failed."} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
		before = status(t, 0)
		if before.State != "in sync" || before.Generation == nil || before.Generation.Kind != "apply" || !before.BootOK {
			t.Errorf("status: %+v", before)
		}
	})

	t.Run("counters grow after traffic", func(t *testing.T) {
		onPi(t, l, p, `for i in 1 2 3; do timeout 2 bash -c 'exec 3<>/dev/tcp/api.lab/443'; done
timeout 2 bash -c 'exec 3<>/dev/tcp/blocked.lab/443' || true`)
		after := status(t, 0)
		if apiPackets(after) <= apiPackets(before) {
			t.Errorf("api.lab's rules counted %d packets, then %d after three connections", apiPackets(before), apiPackets(after))
		}
		if after.Drops <= before.Drops {
			t.Errorf("drops %d, then %d after a connection to blocked.lab", before.Drops, after.Drops)
		}
		out, _ := piwall(t, 0, "status", site, "--detailed")
		t.Logf("piwall status --detailed:\n%s", out)
	})

	t.Run("drift after a rule made by hand", func(t *testing.T) {
		onPi(t, l, p, "sudo -n iptables -I OUTPUT -d 198.18.1.12 -j ACCEPT")
		defer onPi(t, l, p, "sudo -n iptables -D OUTPUT -d 198.18.1.12 -j ACCEPT")
		out, stderr := piwall(t, 1, "status", site)
		t.Logf("piwall status:\n%s", out)
		if !strings.Contains(out, "pi-01  drift") || !strings.Contains(out, "pi-01: 1 change against the plan") || !strings.Contains(stderr, "1 host of 1 not in sync") {
			t.Errorf("status:\n%s%s", out, stderr)
		}
	})

	t.Run("not persisted after rules.v4 edited by hand", func(t *testing.T) {
		onPi(t, l, p, `sudo -n sed -i '/piwall: loopback/d' /etc/iptables/rules.v4`)
		out, _ := piwall(t, 1, "status", site)
		t.Logf("piwall status:\n%s", out)
		if !strings.Contains(out, "pi-01  not persisted") || !strings.Contains(out, "persisted IPv4: differs: 2 line(s) live only, 0 in rules.v4 only") {
			t.Errorf("status:\n%s", out)
		}
		if s := status(t, 1); s.State != "not persisted" || s.Changes != 0 {
			t.Errorf("status --json: %+v", s)
		}
	})

	t.Run("reverting while a killed apply's dead-man waits", func(t *testing.T) {
		next := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"198.18.1.12\"]\n    ports = [\"tcp/443\"]\n  }", "20s")
		out, err := piwallProcess(t, "applied", "apply", next, "--yes")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != -1 {
			t.Fatalf("piwall was not killed once the rules were live: %v\n%s", err, out)
		}
		stdout, _ := piwall(t, 1, "status", next)
		t.Logf("piwall status:\n%s", stdout)
		for _, want := range []string{"pi-01  reverting", "armed (process, run ", "held by "} {
			if !strings.Contains(stdout, want) {
				t.Errorf("no %q in:\n%s", want, stdout)
			}
		}
	})
}
