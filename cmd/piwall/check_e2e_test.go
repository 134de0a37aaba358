//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/examples/lab"
	"github.com/piwall/piwall/modules"
)

// The check tests run piwall check against the lab's Pis after an apply,
// then break what the plan allows, by hand on a Pi, and expect check to
// name it:
//
//	go test -count=1 -run 'TestE2ECheck' ./cmd/piwall -v

// expectBlockedLab is the lab plan's expect_blocked block.
const expectBlockedLab = `  expect_blocked {
    to    = ["blocked.lab"]
    ports = ["tcp/443"]
  }`

// withPing gives a lab Pi a ping, as Raspberry Pi OS Lite has (busybox's,
// from the lab's repository): the lab's base has none.
func withPing(t *testing.T, l *lab.Lab, p lab.Pi) {
	t.Helper()
	onPi(t, l, p, "sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static </dev/null >/dev/null && ln -sf /bin/busybox /usr/local/bin/ping'")
}

// failedRows are the lines of check's table that failed.
func failedRows(stdout string) []string {
	var rows []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "FAIL ") {
			rows = append(rows, strings.TrimSpace(line))
		}
	}
	return rows
}

func TestE2ECheck(t *testing.T) {
	l := e2eLab(t, 1)
	p := l.Pis[0]
	withPing(t, l, p)
	site := labPlan(t, l, adminSSH, expectBlockedLab, "20s")
	piwall(t, 0, "apply", site, "--yes")

	t.Run("after apply", func(t *testing.T) {
		start := time.Now()
		stdout, _ := piwall(t, 0, "check", site)
		t.Logf("piwall check (%.1fs):\n%s", time.Since(start).Seconds(), stdout)
		if rows := failedRows(stdout); len(rows) > 0 {
			t.Errorf("failed rows after apply: %q", rows)
		}
		js, _ := piwall(t, 0, "check", site, "--json")
		var doc struct {
			Checks []struct {
				Host     string `json:"host"`
				OK       bool   `json:"ok"`
				Findings []struct {
					Probe, Expected, Seen string
					OK, Skipped           bool
				} `json:"findings"`
			} `json:"checks"`
			Summary struct{ Passed, Failed int } `json:"check_summary"`
		}
		if err := json.Unmarshal([]byte(js), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Checks) != 1 || !doc.Checks[0].OK || doc.Summary.Passed != 1 || doc.Summary.Failed != 0 {
			t.Fatalf("check --json: %s", js)
		}
		seen := map[string]string{}
		for _, f := range doc.Checks[0].Findings {
			seen[f.Probe] = fmt.Sprintf("%s: %s ok=%v skipped=%v", f.Expected, f.Seen, f.OK, f.Skipped)
		}
		want := map[string]string{
			"tcp/443 api.lab (198.18.1.11)":               "reachable: connected ok=true",
			"tcp/443 api.lab (fd70:6977:616c::1:11)":      "reachable: connected ok=true",
			"tcp/443 dashboard.lab (198.18.1.10)":         "reachable: connected ok=true",
			"ntp udp/123 ntp.lab (198.18.1.123)":          "reachable: NTP answer, stratum 2",
			"ntp udp/123 ntp.lab (fd70:6977:616c::1:123)": "reachable: NTP answer, stratum 2",
			"dns udp/53 198.18.1.53":                      "reachable: DNS answer, NOERROR",
			"ping api.lab (198.18.1.11)":                  "reachable: reply ok=true",
			"tcp/443 blocked.lab (198.18.1.12)":           "blocked: no answer within 3s ok=true",
			"tcp/443 blocked.lab (fd70:6977:616c::1:12)":  "blocked: no answer within 3s ok=true",
			"tcp/22 127.0.0.1":                            "open or refused: ",
			"tcp/22 ::1":                                  "open or refused: ",
			"persisted IPv4":                              "live = rules.v4: same ok=true",
			"persisted IPv6":                              "live = rules.v6: same ok=true",
			"resolve dashboard.lab":                       "resolves: 198.18.1.10",
			"resolve blocked.lab":                         "resolves: 198.18.1.12",
		}
		for probe, prefix := range want {
			if got, ok := seen[probe]; !ok || !strings.HasPrefix(got, prefix) {
				t.Errorf("%s: %q, want %q...", probe, got, prefix)
			}
		}
	})

	t.Run("api.lab dropped by hand", func(t *testing.T) {
		onPi(t, l, p, "sudo -n iptables -I OUTPUT -d 198.18.1.11 -j DROP")
		defer onPi(t, l, p, "sudo -n iptables -D OUTPUT -d 198.18.1.11 -j DROP")
		stdout, stderr := piwall(t, 1, "check", site)
		t.Logf("piwall check:\n%s", stdout)
		rows := strings.Join(failedRows(stdout), "\n")
		for _, want := range []string{"tcp/443 api.lab (198.18.1.11)", "ping api.lab (198.18.1.11)"} {
			if !strings.Contains(rows, want) {
				t.Errorf("failed rows do not name %s:\n%s", want, rows)
			}
		}
		if strings.Contains(rows, "fd70:6977:616c::1:11") || strings.Contains(rows, "dashboard.lab") {
			t.Errorf("failed rows name more than what was dropped:\n%s", rows)
		}
		if !strings.Contains(stderr, "1 host of 1 failed the check") {
			t.Errorf("stderr: %q", stderr)
		}
	})

	t.Run("ntp blocked", func(t *testing.T) {
		onPi(t, l, p, "sudo -n iptables -I OUTPUT -p udp --dport 123 -j DROP && sudo -n ip6tables -I OUTPUT -p udp --dport 123 -j DROP")
		defer onPi(t, l, p, "sudo -n iptables -D OUTPUT -p udp --dport 123 -j DROP && sudo -n ip6tables -D OUTPUT -p udp --dport 123 -j DROP")
		stdout, _ := piwall(t, 1, "check", site)
		t.Logf("piwall check:\n%s", stdout)
		rows := strings.Join(failedRows(stdout), "\n")
		for _, want := range []string{"ntp udp/123 ntp.lab (198.18.1.123)", "ntp udp/123 ntp.lab (fd70:6977:616c::1:123)"} {
			if !strings.Contains(rows, want) {
				t.Errorf("failed rows do not name %s:\n%s", want, rows)
			}
		}
	})

	t.Run("back to passing", func(t *testing.T) {
		piwall(t, 0, "check", site)
	})

	// The check script's own output on a lab Pi, for the parser's recorded
	// cases: PIWALL_RECORD_CHECK=FILE writes it there.
	t.Run("script output", func(t *testing.T) {
		a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
		c := &modules.Check{}
		for _, pr := range []modules.Probe{
			modules.NewProbe(modules.ProbeTCP, "", a("127.0.0.1"), 22, modules.ExpectLoopback),
			modules.NewProbe(modules.ProbeTCP, "", a("::1"), 22, modules.ExpectLoopback),
			modules.NewProbe(modules.ProbeDNS, "", a("198.18.1.53"), 53, modules.ExpectReachable),
			modules.NewProbe(modules.ProbeTCP, "api.lab", a("198.18.1.11"), 443, modules.ExpectReachable),
			modules.NewProbe(modules.ProbeNTP, "ntp.lab", a("fd70:6977:616c::1:123"), 123, modules.ExpectReachable),
			modules.NewProbe(modules.ProbePing, "api.lab", a("198.18.1.11"), 0, modules.ExpectReachable),
			modules.NewProbe(modules.ProbeTCP, "blocked.lab", a("198.18.1.12"), 443, modules.ExpectBlocked),
			modules.NewProbe(modules.ProbePing, "blocked.lab", a("198.18.1.12"), 0, modules.ExpectBlocked),
			modules.NewProbe(modules.ProbeNTP, "api.lab", a("198.18.1.11"), 123, modules.ExpectBlocked),
		} {
			pr.ID = len(c.Probes) + 1
			c.Probes = append(c.Probes, pr)
		}
		out := onPi(t, l, p, "cat >/tmp/check.sh <<'PIWALL_EOF'\n"+c.Script(modules.Paths{})+"PIWALL_EOF\nsudo -n bash /tmp/check.sh; rm -f /tmp/check.sh")
		if file := os.Getenv("PIWALL_RECORD_CHECK"); file != "" {
			if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		findings, err := c.Judge([]byte(out))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, f := range findings {
			if !f.OK {
				t.Errorf("%s: expected %s, seen %s", f.What, f.Expected, f.Seen)
			}
		}
	})
}

// TestE2ECheckFleet measures a whole fleet's check: 20 fresh Pis applied,
// then checked with 10 and with 20 in flight, and logs the times (a
// figure, not an assertion: the machine is shared). BENCH_PIS changes the
// size.
func TestE2ECheckFleet(t *testing.T) {
	n := 20
	if s := os.Getenv("BENCH_PIS"); s != "" {
		fmt.Sscan(s, &n)
	}
	l := e2eLab(t, n)
	site := labPlan(t, l, adminSSH, expectBlockedLab, "60s")
	piwall(t, 0, "apply", site, "--yes", "--canary", "0")
	// The plan's rollout.parallel (10) must pass. 20 at once is logged
	// only: 20 lab Pis share this machine's cores, and 20 hosts' probes
	// started at once can starve each other past their limit, which 20
	// real Pis, each with its own CPU, do not.
	for _, parallel := range []string{"10", "20"} {
		start := time.Now()
		code, stdout, stderr := runPiwall(t, "check", site, "--parallel", parallel)
		took := time.Since(start)
		last := stdout[strings.LastIndex(strings.TrimSpace(stdout), "\n")+1:]
		t.Logf("check of %d Pis, --parallel %s: exit %d, %.1fs (%s)", n, parallel, code, took.Seconds(), strings.TrimSpace(last))
		if parallel == "10" && code != 0 {
			t.Errorf("check --parallel 10: exit %d\n%s%s", code, stdout, stderr)
		}
	}
}
