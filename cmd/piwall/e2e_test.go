//go:build linux

package main

// The end-to-end tests run piwall, in this process or as its own process,
// against the lab's real Pis: real sshd, real iptables, real traffic. They
// need root (CI runs them as root: bash .ci/test) and skip without it.
//
//	go test ./cmd/piwall -run E2E -v

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/piwall/piwall/examples/lab"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/runner"
)

// asCLI, in the environment, makes the test binary run piwall's main: the
// fault tests kill piwall with SIGKILL, which needs a process of its own.
// killAt names the point of an apply where it dies.
const (
	asCLI  = "PIWALL_TEST_AS_CLI"
	killAt = "PIWALL_TEST_KILL_AT"
)

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		faultHook = killer(os.Getenv(killAt))
		main()
		return
	}
	os.Exit(m.Run())
}

// killer kills this process with SIGKILL at a point of an apply, as a
// crash or an impatient operator would: "prepare" while prepare runs on
// the Pi, "prepared" once it has returned, "applied" once the new rules
// are live, "confirm" while the confirm command runs.
func killer(point string) func(string, runner.FaultPoint) {
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	// 50 ms: once the remote command is under way, before it can end
	// (prepare and confirm take longer on a lab Pi).
	soon := func() { time.AfterFunc(50*time.Millisecond, kill) }
	return func(_ string, p runner.FaultPoint) {
		switch {
		case point == "prepare" && p == runner.FaultPrepareStarts,
			point == "confirm" && p == runner.FaultConfirmStarts:
			soon()
		case point == "prepared" && p == runner.FaultPrepared:
			kill()
		case point == "applied" && p == runner.FaultPrepared:
			time.Sleep(1500 * time.Millisecond) // the applier has loaded the rules by then
			kill()
		}
	}
}

// e2eLab starts a lab of n Pis and points HOME at a directory whose
// ~/.ssh/config reaches the lab (for hosts given by address).
func e2eLab(t *testing.T, n int) *lab.Lab {
	t.Helper()
	return e2eLabOf(t, lab.Config{Pis: n})
}

// e2eLabOf is e2eLab for a lab as cfg says.
func e2eLabOf(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	cfg.Dir = filepath.Join(t.TempDir(), "lab")
	l := lab.Start(t, cfg)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("Host *\n  User pi\n  IdentityFile %s\n  UserKnownHostsFile %s\n", l.Key(), l.KnownHosts())
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	return l
}

// labPlan writes a plan for the lab's Pis: the kiosk allowlist, with extra
// text inside the allowlist and the given revert_after.
func labPlan(t *testing.T, l *lab.Lab, inbound, extra, revertAfter string) string {
	t.Helper()
	var hosts strings.Builder
	for _, p := range l.Pis {
		fmt.Fprintf(&hosts, "host %q {\n  address = %q\n  groups  = [\"kiosk\"]\n}\n", p.Name, p.Addrs.V4)
	}
	src := fmt.Sprintf(`defaults {
  user          = "pi"
  identity_file = %q
  known_hosts   = %q
  revert_after  = %q
}
allowlist "kiosk" {
%s
  outbound {
    to    = ["dashboard.lab", "api.lab"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.lab"]
    ports = ["udp/123"]
  }
%s
  dns       = "system"
  ping      = true
  log_drops = true
}
group "kiosk" {
  allowlists = ["kiosk"]
}
%s`, l.Key(), l.KnownHosts(), revertAfter, inbound, extra, hosts.String())
	path := filepath.Join(t.TempDir(), "site.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const adminSSH = `  inbound {
    from  = ["198.18.0.1", "fd70:6977:616c::1"]
    ports = ["tcp/22"]
  }`

// noSSH admits SSH only from the intruder: the plan locks the operator out.
const noSSH = `  inbound {
    from  = ["198.18.0.66"]
    ports = ["tcp/22"]
  }`

// piwall runs piwall in this process and fails the test on an unexpected
// exit code.
func piwall(t *testing.T, wantCode int, args ...string) (stdout, stderr string) {
	t.Helper()
	start := time.Now()
	code, stdout, stderr := runPiwall(t, args...)
	if took := time.Since(start); took > 15*time.Second {
		t.Logf("piwall %s took %.1fs; its progress:\n%s", strings.Join(args, " "), took.Seconds(), stderr)
	}
	if code != wantCode {
		t.Fatalf("piwall %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
	}
	return stdout, stderr
}

// live returns a Pi's live filter tables, as piwall compares them.
func live(t *testing.T, l *lab.Lab, p lab.Pi) (v4, v6 string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.ProveOwnNetns(ctx, p); err != nil {
		t.Fatal(err)
	}
	text := func(cmd string) string {
		// A Pi without iptables has the kernel's defaults: every policy ACCEPT.
		out, err := l.Run(ctx, p, "sudo -n sh -c 'if command -v "+cmd+" >/dev/null; then "+cmd+"; fi'")
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		rs, err := firewall.Parse(out)
		if err != nil {
			t.Fatalf("%s: %s: %v", p.Name, cmd, err)
		}
		return firewall.LiveFilter(rs).Text()
	}
	return text("iptables-save"), text("ip6tables-save")
}

// persisted returns a Pi's /etc/iptables/rules.v4 and rules.v6 ("" when absent).
func persisted(t *testing.T, l *lab.Lab, p lab.Pi) (v4, v6 string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.Run(ctx, p, "for f in /etc/iptables/rules.v4 /etc/iptables/rules.v6; do sudo -n cat $f 2>/dev/null; echo '@@'; done")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(out, "@@\n")
	return parts[0], parts[1]
}

// onPi runs a command on a Pi over a new connection.
func onPi(t *testing.T, l *lab.Lab, p lab.Pi, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Run(ctx, p, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantTraffic checks from inside the Pi that what the kiosk allowlist
// admits passes and the rest is dropped (a timeout, not a refusal), over
// IPv4 and IPv6, and that the intruder cannot reach the Pi's sshd.
func wantTraffic(t *testing.T, l *lab.Lab, p lab.Pi) {
	t.Helper()
	ctx := context.Background()
	for _, s := range lab.Services {
		for _, a := range []netip.Addr{s.Addrs.V4, s.Addrs.V6} {
			got, err := lab.ProbeFrom(ctx, p.Netns, s.Proto, netip.AddrPortFrom(a, uint16(s.Port)))
			if s.Banner == "blocked" || s.Banner == "api-next" { // not in the plan (api-next.lab is where TestE2ENames moves api.lab)
				if err == nil || !strings.Contains(err.Error(), "timeout") {
					t.Errorf("%s to %s at %s: got %q, %v; want a timeout", p.Name, s.Name, a, got, err)
				}
				continue
			}
			if err != nil || got != s.Banner {
				t.Errorf("%s to %s at %s: got %q, %v; want %q", p.Name, s.Name, a, got, err, s.Banner)
			}
		}
	}
	for _, a := range []netip.Addr{p.Addrs.V4, p.Addrs.V6} {
		got, err := lab.ProbeFrom(ctx, "pwl-intruder", "tcp", netip.AddrPortFrom(a, 22))
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("intruder to %s's sshd at %s: got %q, %v; want a timeout", p.Name, a, got, err)
		}
	}
	// The Pi's own tools: names resolve, loopback works, the allowed
	// service answers by name, the blocked one does not.
	out := onPi(t, l, p, `getent ahosts api.lab | head -n1
timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/22 && head -c 8 <&3'; echo
timeout 3 bash -c 'exec 3<>/dev/tcp/dashboard.lab/443 && head -n1 <&3'
timeout 3 bash -c 'exec 3<>/dev/tcp/blocked.lab/443 && head -n1 <&3' || echo blocked-is-blocked`)
	for _, want := range []string{"STREAM api.lab", "SSH-2.0-", "dashboard", "blocked-is-blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s's own view: no %q in\n%s", p.Name, want, out)
		}
	}
}

func TestE2EApplyPlanDriftRollback(t *testing.T) {
	l := e2eLab(t, 1)
	p := l.Pis[0]
	site := labPlan(t, l, adminSSH, "", "20s")
	before4, _ := live(t, l, p)

	t.Run("fresh Pi: apply installs iptables and locks it down", func(t *testing.T) {
		start := time.Now()
		stdout, stderr := piwall(t, 0, "apply", site, "--yes", "--stats")
		t.Logf("apply to a fresh Pi took %.1fs", time.Since(start).Seconds())
		// The facts, and prepare with the run's files on its stdin, over
		// the first connection; confirm over the new one.
		if !strings.Contains(stderr, "stats: pi-01: 2 connections, 3 commands, 1 uploads") {
			t.Errorf("apply's round trips:\n%s", stderr)
		}
		if got := outcomeRow(stdout, "pi-01"); got[0] != "applied" || got[2] != "2" {
			t.Errorf("apply: pi-01's outcome and generation: got %q, want applied, 2:\n%s", got, stdout)
		}
		for _, want := range []string{"iptables: not installed", "+ allow out tcp/443 to dashboard.lab (as the host resolves it, set piwall-"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("apply output lacks %q:\n%s", want, stdout)
			}
		}
		wantTraffic(t, l, p)
		v4, v6 := live(t, l, p)
		p4, p6 := persisted(t, l, p)
		if p4 != v4 || p6 != v6 {
			t.Errorf("persisted rules differ from the live ones:\nlive:\n%s\npersisted:\n%s", v4, p4)
		}
	})

	t.Run("a second plan and apply change nothing", func(t *testing.T) {
		stdout, stderr := piwall(t, 0, "plan", site, "--detailed-exitcode", "--stats")
		if !strings.Contains(stdout, "pi-01 (198.18.2.1:22, nf_tables): no changes.") {
			t.Errorf("plan: %s", stdout)
		}
		if !strings.Contains(stderr, "stats: pi-01: 1 connections, 1 commands, 0 uploads") {
			t.Errorf("plan's round trips:\n%s", stderr)
		}
		out, _ := piwall(t, 0, "plan", site, "--json")
		var doc jsonDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("plan --json: %v\n%s", err, out)
		}
		if doc.FormatVersion != "1" || len(doc.Hosts) != 1 || doc.Hosts[0].Status != "unchanged" || doc.Summary.Unchanged != 1 {
			t.Errorf("plan --json: %s", out)
		}
		stamp := onPi(t, l, p, "stat -c %i.%Y /etc/iptables/rules.v4; sudo -n cat /var/lib/piwall/current")
		stdout, stderr = piwall(t, 0, "apply", site, "--yes", "--stats")
		if !strings.Contains(stdout, "No changes") || !strings.Contains(stderr, "stats: pi-01: 1 connections, 1 commands, 0 uploads") {
			t.Errorf("apply: %s\n%s", stdout, stderr)
		}
		if again := onPi(t, l, p, "stat -c %i.%Y /etc/iptables/rules.v4; sudo -n cat /var/lib/piwall/current"); again != stamp {
			t.Errorf("a no-change apply touched the host: rules.v4 and generation %q, then %q", stamp, again)
		}
	})

	t.Run("a rule added by hand is drift that apply removes", func(t *testing.T) {
		onPi(t, l, p, "sudo -n iptables -I INPUT 3 -s 198.18.0.66 -p tcp --dport 22 -j ACCEPT")
		stdout, _ := piwall(t, 2, "plan", site, "--detailed-exitcode")
		if !strings.Contains(stdout, "- foreign rule in INPUT: -A INPUT -s 198.18.0.66/32 -p tcp -m tcp --dport 22 -j ACCEPT") {
			t.Errorf("plan does not show the drift:\n%s", stdout)
		}
		piwall(t, 0, "apply", site, "--yes")
		v4, _ := live(t, l, p)
		if strings.Contains(v4, "198.18.0.66") {
			t.Errorf("the hand-made rule is still live:\n%s", v4)
		}
		piwall(t, 0, "plan", site, "--detailed-exitcode")
	})

	t.Run("a saved plan applies only to hosts that did not change", func(t *testing.T) {
		site2 := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"198.18.1.12\"]\n    ports = [\"udp/9\"]\n  }", "20s")
		planFile := filepath.Join(t.TempDir(), "plan.json")
		piwall(t, 2, "plan", site2, "--out", planFile, "--detailed-exitcode")
		onPi(t, l, p, "sudo -n iptables -A INPUT -s 198.18.0.99 -j ACCEPT")
		stdout, _ := piwall(t, 1, "apply", planFile, "--yes")
		if !strings.Contains(stdout, "the host changed since the plan was saved") {
			t.Errorf("apply of a stale saved plan: %s", stdout)
		}
		piwall(t, 0, "apply", site, "--yes")
		piwall(t, 2, "plan", site2, "--out", planFile, "--detailed-exitcode")
		stdout, _ = piwall(t, 0, "apply", planFile, "--yes")
		if got := outcomeRow(stdout, "pi-01"); got[0] != "applied" {
			t.Errorf("apply of a saved plan: pi-01's outcome: got %q, want applied:\n%s", got, stdout)
		}
		if v4, _ := live(t, l, p); !strings.Contains(v4, "-d 198.18.1.12/32 -p udp -m udp --dport 9") {
			t.Errorf("the saved plan's rules are not live:\n%s", v4)
		}
		piwall(t, 0, "apply", site, "--yes")
	})

	t.Run("without a terminal, apply refuses unless --yes", func(t *testing.T) {
		site2 := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"198.18.1.12\"]\n    ports = [\"udp/9\"]\n  }", "20s")
		_, stderr := piwall(t, 1, "apply", site2)
		if !strings.Contains(stderr, "refusing to apply without a terminal to confirm on\nhint: --yes") {
			t.Errorf("apply without --yes: %s", stderr)
		}
		piwall(t, 0, "plan", site, "--detailed-exitcode")
	})

	t.Run("a stale lock is taken over, a live one refused", func(t *testing.T) {
		onPi(t, l, p, `sudo -n sh -c 'printf "run=0badc0de\noperator=ghost@laptop\nsince=1\nexpires=2\n" >/var/lib/piwall/lock'`)
		site2 := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"198.18.1.12\"]\n    ports = [\"udp/9\"]\n  }", "20s")
		stdout, stderr := piwall(t, 0, "apply", site2, "--yes", "--json")
		if !strings.Contains(stderr, "pi-01: warning: took over a stale lock: run=0badc0de operator=ghost@laptop") {
			t.Errorf("apply over a stale lock, progress: %s", stderr)
		}
		// The warning is data: --json carries it in the host's outcome.
		var doc struct {
			Outcomes []struct {
				Host, Status string
				Warnings     []string
			}
		}
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Outcomes) != 1 {
			t.Fatalf("apply --json: %v\n%s", err, stdout)
		}
		if o := doc.Outcomes[0]; o.Status != "applied" || len(o.Warnings) != 1 || !strings.HasPrefix(o.Warnings[0], "took over a stale lock: run=0badc0de operator=ghost@laptop") {
			t.Errorf("apply --json over a stale lock: outcome %+v, want applied with the takeover as its warning", o)
		}
		onPi(t, l, p, `sudo -n sh -c 'printf "run=0badc0de\noperator=ghost@laptop\nsince=1\nexpires=99999999999\n" >/var/lib/piwall/lock'`)
		stdout, _ = piwall(t, 1, "apply", site, "--yes")
		if !strings.Contains(stdout, "another run holds the lock: locked by: run=0badc0de operator=ghost@laptop") {
			t.Errorf("apply over a live lock: %s", stdout)
		}
		onPi(t, l, p, "sudo -n rm /var/lib/piwall/lock")
		piwall(t, 0, "apply", site, "--yes")
	})

	t.Run("rollback restores the previous generation byte for byte", func(t *testing.T) {
		prev4, prev6 := live(t, l, p)
		site2 := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"blocked.lab\"]\n    ports = [\"tcp/443\"]\n  }", "20s")
		piwall(t, 0, "apply", site2, "--yes")
		if got, err := lab.ProbeFrom(context.Background(), p.Netns, "tcp", netip.MustParseAddrPort("198.18.1.12:443")); err != nil || got != "blocked" {
			t.Fatalf("after allowing blocked.lab: got %q, %v", got, err)
		}
		stdout, _ := piwall(t, 0, "rollback", "pi-01", "--plan", site2, "--yes")
		if got := outcomeRow(stdout, "pi-01"); got[0] != "applied" {
			t.Errorf("rollback: pi-01's outcome: got %q, want applied:\n%s", got, stdout)
		}
		v4, v6 := live(t, l, p)
		if v4 != prev4 || v6 != prev6 {
			t.Errorf("after rollback the live rules are not the previous generation's:\ngot:\n%s\nwant:\n%s", v4, prev4)
		}
		out, _ := piwall(t, 0, "history", "pi-01", "--plan", site2, "--json")
		var doc jsonDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.History == nil || doc.History.Current != len(doc.History.Generations) {
			t.Errorf("history --json: %v\n%s", err, out)
		}
		history, _ := piwall(t, 0, "history", "pi-01", "--plan", site2)
		for _, want := range []string{"found", "replaced", "rollback", "(current)"} {
			if !strings.Contains(history, want) {
				t.Errorf("history lacks %q:\n%s", want, history)
			}
		}
	})

	t.Run("rollback --to N and by address without a plan", func(t *testing.T) {
		// Generation 1 is the fresh Pi's all-ACCEPT state.
		stdout, _ := piwall(t, 0, "rollback", "pi@198.18.2.1", "--to", "1", "--yes")
		if got := outcomeRow(stdout, "pi@198.18.2.1"); got[0] != "applied" {
			t.Errorf("rollback --to 1: pi@198.18.2.1's outcome: got %q, want applied:\n%s", got, stdout)
		}
		if v4, _ := live(t, l, p); v4 != before4 || v4 != modules.OpenRuleset {
			t.Errorf("after rollback --to 1: got\n%s\nwant the fresh Pi's\n%s", v4, before4)
		}
		piwall(t, 0, "apply", site, "--yes")
		piwall(t, 0, "rollback", "198.18.2.1", "--open", "--yes")
		v4, v6 := live(t, l, p)
		if v4 != modules.OpenRuleset || v6 != modules.OpenRuleset {
			t.Errorf("after rollback --open: got\n%s\n%s", v4, v6)
		}
	})
}

func TestE2ELockoutAndPersistence(t *testing.T) {
	l := e2eLab(t, 2)
	p1, p2 := l.Pis[0], l.Pis[1]

	t.Run("plan through a jump host", func(t *testing.T) {
		site := labPlan(t, l, adminSSH, "", "10s")
		src, _ := os.ReadFile(site)
		jumped := strings.Replace(string(src), `revert_after  = "10s"`, `revert_after  = "10s"
  jump          = "pi@198.18.2.2"`, 1)
		os.WriteFile(site, []byte(jumped), 0o644)
		stdout, _ := piwall(t, 2, "plan", site, "--limit", "pi-01", "--detailed-exitcode")
		// Through pi-02, the plan admits no SSH from where pi-01 sees it come.
		if !strings.Contains(stdout, "a new SSH connection from 198.18.2.2 to tcp/22 would be dropped") {
			t.Errorf("plan through pi-02: %s", stdout)
		}
	})

	t.Run("a plan without SSH from the admin is refused", func(t *testing.T) {
		site := labPlan(t, l, noSSH, "", "10s")
		stdout, stderr := piwall(t, 1, "apply", site, "--yes", "--limit", "pi-01")
		if !strings.Contains(stdout, "a new SSH connection from 198.18.0.1 to tcp/22 would be dropped") {
			t.Errorf("apply without --force:\n%s\n%s", stdout, stderr)
		}
		if out := onPi(t, l, p1, "test -e /etc/iptables/rules.v4 || echo none; sudo -n test -e /var/lib/piwall/current || echo no-generation"); out != "none\nno-generation\n" {
			t.Errorf("a refused apply changed the host: %q", out)
		}
	})

	t.Run("with --force the Pi reverts and stays fully open", func(t *testing.T) {
		site := labPlan(t, l, noSSH, "", "10s")
		start := time.Now()
		stdout, _ := piwall(t, 1, "apply", site, "--yes", "--force", "--limit", "pi-01")
		took := time.Since(start)
		if got := outcomeRow(stdout, "pi-01"); got[0] != "reverted" {
			t.Errorf("apply --force: pi-01's outcome: got %q, want reverted:\n%s", got, stdout)
		}
		// revert_after, 10 s, and the time apt takes to install iptables.
		if took > 30*time.Second {
			t.Errorf("the revert took %s, want within revert_after + 10s of the apply", took)
		}
		v4, v6 := live(t, l, p1)
		if v4 != modules.OpenRuleset || v6 != modules.OpenRuleset {
			t.Errorf("after the revert of a fresh Pi: want every policy ACCEPT, got\n%s\n%s", v4, v6)
		}
		if out := onPi(t, l, p1, "test -e /etc/iptables/rules.v4 || echo none"); out != "none\n" {
			t.Errorf("a reverted apply persisted rules: %q", out)
		}
	})

	t.Run("sudo that wants a password is named", func(t *testing.T) {
		// pi-01 keeps sudo with a password for the rest of this test.
		onPi(t, l, p1, "sudo -n mv /etc/sudoers.d/010_pi-nopasswd /root/")
		stdout, _ := piwall(t, 1, "plan", labPlan(t, l, adminSSH, "", "10s"), "--limit", "pi-01")
		if !strings.Contains(stdout, "sudo: a password is required") || !strings.Contains(stdout, "NOPASSWD") {
			t.Errorf("plan with sudo asking for a password: %s", stdout)
		}
	})

	t.Run("persisted rules come back at boot", func(t *testing.T) {
		site := labPlan(t, l, adminSSH, "", "20s")
		piwall(t, 0, "apply", site, "--yes", "--limit", "pi-02")
		want4, want6 := live(t, l, p2)
		// A reboot without systemd: the tables emptied, then
		// netfilter-persistent's boot-time restore.
		onPi(t, l, p2, `sudo -n sh -c 'for t in iptables ip6tables; do $t -P INPUT ACCEPT; $t -P OUTPUT ACCEPT; $t -P FORWARD ACCEPT; $t -F; done'`)
		if v4, _ := live(t, l, p2); v4 == want4 {
			t.Fatal("the tables were not emptied")
		}
		onPi(t, l, p2, "sudo -n netfilter-persistent start >/dev/null 2>&1")
		if v4, v6 := live(t, l, p2); v4 != want4 || v6 != want6 {
			t.Errorf("after the boot-time restore:\ngot:\n%s\nwant:\n%s", v4, want4)
		}
	})
}

// reboot reboots a lab Pi, as a power cycle would, within a minute.
func reboot(t *testing.T, l *lab.Lab, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Reboot(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// piwallProcess runs piwall as a process of its own, which the fault
// tests kill.
func piwallProcess(t *testing.T, point string, args ...string) (string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), asCLI+"=1", killAt+"="+point)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

func TestE2EFaults(t *testing.T) {
	l := e2eLab(t, 1)
	p := l.Pis[0]
	const revert = 10 * time.Second
	old := labPlan(t, l, adminSSH, "", "10s")
	next := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"198.18.1.12\"]\n    ports = [\"tcp/443\"]\n  }", "10s")
	third := labPlan(t, l, adminSSH, "  outbound {\n    to    = [\"198.18.1.12\"]\n    ports = [\"udp/9\"]\n  }", "10s")
	piwall(t, 0, "apply", old, "--yes")
	old4, old6 := live(t, l, p)
	plan := old

	// settled checks the Pi once its dead-man has had its time: reachable,
	// live rules old or new, persisted rules equal to the live ones.
	settled := func(t *testing.T) {
		t.Helper()
		time.Sleep(revert + 3*time.Second)
		v4, v6 := live(t, l, p)
		p4, p6 := persisted(t, l, p)
		if p4 != v4 || p6 != v6 {
			t.Errorf("persisted rules differ from the live ones:\nlive:\n%s\npersisted:\n%s", v4, p4)
		}
		isOld := v4 == old4 && v6 == old6
		isNew := strings.Contains(v4, "-d 198.18.1.12/32")
		if !isOld && !isNew {
			t.Errorf("live rules are neither the old nor the new ruleset:\n%s", v4)
		}
		if isNew {
			plan = next
		} else {
			plan = old
		}
		t.Logf("ended with the %s rules", map[bool]string{true: "new", false: "old"}[isNew])
	}

	for _, point := range []string{"prepare", "prepared", "applied", "confirm"} {
		t.Run("piwall killed at "+point, func(t *testing.T) {
			target := next
			if plan == next {
				target = old
			}
			out, err := piwallProcess(t, point, "apply", target, "--yes")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != -1 {
				t.Fatalf("piwall was not killed at %s: %v\n%s", point, err, out)
			}
			settled(t)
		})
	}

	t.Run("the Pi's sshd stops after the apply", func(t *testing.T) {
		target := next
		if plan == next {
			target = old
		}
		before := deadmen(t, l, p)
		done := make(chan string)
		go func() {
			out, _ := piwallProcess(t, "", "apply", target, "--yes")
			done <- out
		}()
		// Cut the SSH path once prepare has armed the dead-man.
		for deadline := time.Now().Add(60 * time.Second); deadmen(t, l, p) == before && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		if err := l.StopSSHD(p); err != nil {
			t.Fatal(err)
		}
		out := <-done
		if err := l.StartSSHD(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "pi-01: reverting at") {
			t.Errorf("piwall did not report the Pi as reverting:\n%s", out)
		}
		t.Logf("piwall said:\n%s", out)
		settled(t)
	})

	t.Run("two applies at once: the second is refused and names the holder", func(t *testing.T) {
		target, other := next, third
		if plan == next {
			target = old
		}
		// The first is killed after prepare: its lock stays until its
		// dead-man fires.
		if _, err := piwallProcess(t, "prepared", "apply", target, "--yes"); err == nil {
			t.Fatal("the first apply was not killed")
		}
		stdout, _ := piwall(t, 1, "apply", other, "--yes")
		if !strings.Contains(stdout, "another run holds the lock: locked by: run=") || !strings.Contains(stdout, "operator=") {
			t.Errorf("the second apply: %s", stdout)
		}
		settled(t)
	})

	t.Run("host keys: a changed key is refused, an unknown one without the flag", func(t *testing.T) {
		kh, err := os.ReadFile(l.KnownHosts())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(l.KnownHosts(), kh, 0o644) })
		// Another key for the Pi's addresses.
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		other, err := gossh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(kh), strings.Fields(p.HostKey)[1], strings.Fields(string(gossh.MarshalAuthorizedKey(other)))[1], 1)
		os.WriteFile(l.KnownHosts(), []byte(bad), 0o644)
		stdout, _ := piwall(t, 1, "plan", plan)
		if !strings.Contains(stdout, "HOST KEY OF pi-01 (198.18.2.1:22) HAS CHANGED") {
			t.Errorf("plan with a changed host key: %s", stdout)
		}
		os.WriteFile(l.KnownHosts(), nil, 0o644)
		stdout, _ = piwall(t, 1, "plan", plan)
		if !strings.Contains(stdout, "host key of pi-01 (198.18.2.1:22) is unknown") || !strings.Contains(stdout, "--accept-new-host-keys") {
			t.Errorf("plan with an unknown host key: %s", stdout)
		}
		piwall(t, 0, "plan", plan, "--accept-new-host-keys")
		piwall(t, 0, "plan", plan)
	})
}

// deadmen counts the runs on a Pi that armed a dead-man.
func deadmen(t *testing.T, l *lab.Lab, p lab.Pi) string {
	t.Helper()
	out, err := l.Run(context.Background(), p, "sudo -n sh -c 'ls /var/lib/piwall/runs/*/deadman 2>/dev/null | wc -l'")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(out)
}

// TestE2ESystemd runs on Pis with systemd as PID 1, as Raspberry Pi OS
// boots: the dead-man is a systemd-run timer, and a reboot restores the
// persisted rules through netfilter-persistent.
func TestE2ESystemd(t *testing.T) {
	if err := lab.Check(); err != nil {
		t.Skipf("no lab: %v (%s)", err, strings.Join(modules.Hints(err), "; "))
	}
	home := t.TempDir()
	l := lab.Start(t, lab.Config{Pis: 2, Dir: filepath.Join(t.TempDir(), "lab"), Systemd: true})
	t.Setenv("HOME", home)
	p1, p2 := l.Pis[0], l.Pis[1]
	if out := onPi(t, l, p1, "systemctl is-system-running || true"); strings.TrimSpace(out) != "running" {
		t.Fatalf("pi-01's systemd: %q", out)
	}

	t.Run("the dead-man is a systemd timer, and a reboot keeps the rules", func(t *testing.T) {
		site := labPlan(t, l, adminSSH, "", "20s")
		piwall(t, 0, "apply", site, "--yes", "--limit", "pi-01")
		if out := onPi(t, l, p1, "sudo -n sh -c 'cat /var/lib/piwall/runs/*/deadman'"); out != "deadman=systemd\n" {
			t.Errorf("dead-man: %q, want a systemd timer", out)
		}
		want4, want6 := live(t, l, p1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Reboot(ctx, p1.Name); err != nil {
			t.Fatal(err)
		}
		p1 = l.Pis[0]
		if v4, v6 := live(t, l, p1); v4 != want4 || v6 != want6 {
			t.Errorf("after a reboot:\ngot:\n%s\nwant:\n%s", v4, want4)
		}
		piwall(t, 0, "plan", site, "--detailed-exitcode", "--limit", "pi-01")
		wantTraffic(t, l, p1)
	})

	t.Run("a lockout reverts through the systemd timer", func(t *testing.T) {
		site := labPlan(t, l, noSSH, "", "10s")
		stdout, _ := piwall(t, 1, "apply", site, "--yes", "--force", "--limit", "pi-02")
		if got := outcomeRow(stdout, "pi-02"); got[0] != "reverted" {
			t.Errorf("apply --force: pi-02's outcome: got %q, want reverted:\n%s", got, stdout)
		}
		if v4, _ := live(t, l, p2); v4 != modules.OpenRuleset {
			t.Errorf("after the revert: want every policy ACCEPT, got\n%s", v4)
		}
		if out := onPi(t, l, p2, "sudo -n sh -c 'cat /var/lib/piwall/runs/*/status'"); out != "reverted\n" {
			t.Errorf("run status: %q", out)
		}
	})
}

// outcomeRow is a host's row of the outcome table: its outcome, changes,
// generation and time, or empty strings if the table has no such row.
func outcomeRow(stdout, host string) [4]string {
	var row [4]string
	columns := regexp.MustCompile(`  +`)
	for _, line := range strings.Split(stdout, "\n") {
		cells := columns.Split(strings.TrimSpace(line), -1)
		if len(cells) == 5 && cells[0] == host {
			copy(row[:], cells[1:])
			return row
		}
	}
	return row
}

// bans lists the addresses fail2ban's sshd jail bans on p.
func bans(t *testing.T, l *lab.Lab, p lab.Pi) []string {
	t.Helper()
	return strings.Fields(onPi(t, l, p, "sudo -n fail2ban-client get sshd banip"))
}

// waitBan waits until fail2ban on p bans addr, or has unbanned it.
func waitBan(t *testing.T, l *lab.Lab, p lab.Pi, addr string, want bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := bans(t, l, p)
		if slices.Contains(got, addr) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: fail2ban bans %q; want %s banned: %v", p.Name, got, addr, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantContainers checks a Docker Pi's containers work: the published port
// answers from the controller, and a new container reaches api.lab
// through Docker's NAT.
func wantContainers(t *testing.T, l *lab.Lab, p lab.Pi) {
	t.Helper()
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(p.Addrs.V4, lab.ContainerPort))
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Errorf("%s's published port: %v", p.Name, err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != lab.ContainerPage {
			t.Errorf("%s's published port answers %q, want %q", p.Name, body, lab.ContainerPage)
		}
	}
	out := onPi(t, l, p, `sudo -n docker run --rm --security-opt apparmor=unconfined lab/busybox sh -c 'nc -w 3 198.18.1.11 443 </dev/null | head -n1'`)
	if strings.TrimSpace(out) != "api" {
		t.Errorf("a container on %s reaches api.lab: got %q, want its banner", p.Name, out)
	}
}

// waitContainer waits for a rebooted Docker Pi to start its container.
func waitContainer(t *testing.T, l *lab.Lab, p lab.Pi) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := l.Run(context.Background(), p, "sudo -n docker inspect -f '{{.State.Running}}' web 2>/dev/null || true")
		if strings.TrimSpace(out) == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the container did not start after the reboot", p.Name)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestE2ESharedPis runs piwall on Pis it shares with another owner, each a
// lab profile built from Debian's packages: fail2ban guarding sshd
// (pi-01), a hotspot whose rules.v4 persists a nat MASQUERADE (pi-02), a
// Pi with a rule loaded through iptables-legacy (pi-03), and Docker with a
// container publishing a port (pi-04).
func TestE2ESharedPis(t *testing.T) {
	if err := lab.Check(); err != nil {
		t.Skipf("no lab: %v (%s)", err, strings.Join(modules.Hints(err), "; "))
	}
	home := t.TempDir()
	l := lab.Start(t, lab.Config{Pis: 5, Dir: filepath.Join(t.TempDir(), "lab"), Systemd: true,
		Profiles: map[string]lab.Profile{"pi-01": lab.Fail2ban, "pi-02": lab.Hotspot, "pi-03": lab.Legacy, "pi-04": lab.Docker, "pi-05": lab.StaleRules}})
	t.Setenv("HOME", home)
	ctx := context.Background()
	f2b, hot, dock := l.Pis[0], l.Pis[1], l.Pis[3]
	const shared = "pi-01,pi-02,pi-04"
	intruder := lab.Intruder.V4.String()

	// Before piwall, fail2ban bans the intruder's failed logins; lifted,
	// so that it can be banned again under piwall's rules.
	if err := l.FailLogins(ctx, f2b, 4); err != nil {
		t.Fatal(err)
	}
	waitBan(t, l, f2b, intruder, true)
	onPi(t, l, f2b, "sudo -n fail2ban-client set sshd unbanip "+intruder)

	// The intruder may reach sshd, so that fail2ban sees its logins. No
	// apply here waits for a revert; a long revert_after leaves room for
	// the changes of others made during an apply on a busy machine.
	site := labPlan(t, l, `  inbound {
    from  = ["198.18.0.1", "fd70:6977:616c::1", "198.18.0.66"]
    ports = ["tcp/22"]
  }`, `  coexist = ["fail2ban", "docker"]`, "45s")

	t.Run("plan shows the backends and refuses rules in both", func(t *testing.T) {
		stdout, _ := piwall(t, 1, "plan", site)
		for _, want := range []string{
			"pi-01 (198.18.2.1:22, nf_tables): ",
			"pi-02 (198.18.2.2:22, nf_tables): ",
			"pi-04 (198.18.2.4:22, nf_tables): ",
			"pi-03 (198.18.2.3:22): failed: pi-03: plan: the host has filter rules in both iptables backends, nf_tables (piwall's, iptables) and legacy (1 rule)",
			"hint: see them with: sudo iptables-legacy-save -t filter",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plan: no %q in\n%s", want, stdout)
			}
		}
		before := onPi(t, l, l.Pis[2], "sudo -n iptables-save -t filter | grep -v '^#'")
		stdout, _ = piwall(t, 1, "apply", site, "--yes", "--force", "--limit", "pi-03")
		if got := outcomeRow(stdout, "pi-03"); got[0] != "failed" {
			t.Errorf("apply --force on pi-03: %q, want failed:\n%s", got, stdout)
		}
		if after := onPi(t, l, l.Pis[2], "sudo -n iptables-save -t filter | grep -v '^#'"); after != before {
			t.Errorf("pi-03 changed:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("apply leaves others' rules, and what they change meanwhile", func(t *testing.T) {
		// While piwall applies, fail2ban bans two addresses, once prepare
		// has returned (as the rules go live) and as confirm starts, and
		// Docker starts a container publishing another port as its rules
		// go live. Each change holds up only its own Pi's apply (a slow
		// docker run must not eat another Pi's dead-man time).
		var once [3]sync.Once
		othersErr := make(chan error, 3)
		onceOn := func(i int, p lab.Pi, cmd string) {
			once[i].Do(func() {
				_, err := l.Run(ctx, p, cmd)
				othersErr <- err
			})
		}
		const late = 8081
		faultHook = func(host string, p runner.FaultPoint) {
			switch {
			case host == f2b.Name && p == runner.FaultPrepared:
				onceOn(0, f2b, "sudo -n fail2ban-client set sshd banip 198.18.7.7")
			case host == f2b.Name && p == runner.FaultConfirmStarts:
				onceOn(1, f2b, "sudo -n fail2ban-client set sshd banip 198.18.7.8")
			case host == dock.Name && p == runner.FaultPrepared:
				onceOn(2, dock, fmt.Sprintf("sudo -n docker run -d --name late --security-opt apparmor=unconfined -p %d:80 lab/busybox httpd -f -p 80 -h /www", late))
			}
		}
		wantContainers(t, l, dock)
		stdout, _ := piwall(t, 0, "apply", site, "--yes", "--limit", shared)
		faultHook = nil
		for i := range 3 {
			select {
			case err := <-othersErr:
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("apply ended with %d of the 3 changes of others made during it", i)
			}
		}
		if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s/", netip.AddrPortFrom(dock.Addrs.V4, late))); err != nil {
			t.Errorf("the container started during the apply: %v", err)
		} else {
			resp.Body.Close()
		}
		for _, h := range strings.Split(shared, ",") {
			if got := outcomeRow(stdout, h); got[0] != "applied" {
				t.Errorf("%s: outcome %q, want applied:\n%s", h, got, stdout)
			}
		}
		for _, addr := range []string{"198.18.7.7", "198.18.7.8"} {
			if !slices.Contains(bans(t, l, f2b), addr) {
				t.Errorf("fail2ban's ban of %s is gone", addr)
			}
		}
		input := onPi(t, l, f2b, "sudo -n iptables -S INPUT")
		if lines := strings.Split(input, "\n"); len(lines) < 3 || lines[1] != "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd" {
			t.Errorf("pi-01's INPUT does not start with fail2ban's jump:\n%s", input)
		}
		if chain := onPi(t, l, f2b, "sudo -n iptables -S f2b-sshd"); !strings.Contains(chain, "-A f2b-sshd -s 198.18.7.8/32 -j REJECT") {
			t.Errorf("f2b-sshd:\n%s", chain)
		}
		if v4, _ := persisted(t, l, f2b); strings.Contains(v4, "f2b") || !strings.Contains(v4, "piwall: loopback") {
			t.Errorf("pi-01's rules.v4 holds fail2ban's rules, or not piwall's:\n%s", v4)
		}
		v4, _ := persisted(t, l, hot)
		for _, want := range []string{"*nat\n", "-A POSTROUTING -s " + lab.HotspotNet + " -o eth0 -j MASQUERADE\n", "piwall: loopback"} {
			if !strings.Contains(v4, want) {
				t.Errorf("pi-02's rules.v4 lacks %q:\n%s", want, v4)
			}
		}
		wantContainers(t, l, dock)
		if v4, _ := persisted(t, l, dock); strings.Contains(strings.ToLower(v4), "docker") {
			t.Errorf("pi-04's rules.v4 holds Docker's rules:\n%s", v4)
		}
	})

	t.Run("fail2ban keeps banning the intruder", func(t *testing.T) {
		if err := l.FailLogins(ctx, f2b, 4); err != nil {
			t.Fatal(err)
		}
		waitBan(t, l, f2b, intruder, true)
		if got, err := lab.ProbeFrom(ctx, "pwl-intruder", "tcp", netip.AddrPortFrom(f2b.Addrs.V4, 22)); err == nil {
			t.Errorf("the banned intruder reaches pi-01's sshd: %q", got)
		}
		piwall(t, 0, "plan", site, "--detailed-exitcode", "--limit", shared)
	})

	t.Run("after a reboot", func(t *testing.T) {
		// A ban fail2ban lifts must not come back at boot.
		onPi(t, l, f2b, "sudo -n fail2ban-client set sshd unbanip 198.18.7.7")
		for _, p := range []lab.Pi{f2b, hot, dock} {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := l.Reboot(rctx, p.Name); err != nil {
				cancel()
				t.Fatal(err)
			}
			cancel()
		}
		f2b, hot, dock = l.Pis[0], l.Pis[1], l.Pis[3]
		waitContainer(t, l, dock)
		piwall(t, 0, "plan", site, "--detailed-exitcode", "--limit", shared)
		if out := onPi(t, l, f2b, "systemctl is-active fail2ban || true"); strings.TrimSpace(out) != "active" {
			t.Errorf("fail2ban after the reboot: %q", out)
		}
		waitBan(t, l, f2b, "198.18.7.8", true)
		if got := bans(t, l, f2b); slices.Contains(got, "198.18.7.7") {
			t.Errorf("a lifted ban came back at boot: %q", got)
		}
		if input := onPi(t, l, f2b, "sudo -n iptables -S INPUT"); strings.Count(input, "-j f2b-sshd") != 1 {
			t.Errorf("fail2ban's jump, after the reboot, not once:\n%s", input)
		}
		if nat := onPi(t, l, hot, "sudo -n iptables -t nat -S POSTROUTING"); !strings.Contains(nat, "-A POSTROUTING -s "+lab.HotspotNet+" -o eth0 -j MASQUERADE") {
			t.Errorf("the hotspot's MASQUERADE after the reboot:\n%s", nat)
		}
		wantContainers(t, l, dock)
		if fwd := onPi(t, l, dock, "sudo -n iptables -S FORWARD"); strings.Count(fwd, "-j DOCKER-USER") != 1 {
			t.Errorf("Docker's FORWARD rules, after the reboot, not once each:\n%s", fwd)
		}
	})

	t.Run("the lockout check sees the operator banned behind an interface-qualified jump", func(t *testing.T) {
		// The operator gets in through a rule nobody declared, first in
		// INPUT, which the plan removes; fail2ban's jump, for eth0 only,
		// then sends the operator's next connection to its ban.
		onPi(t, l, f2b, `sudo -n sh -c 'iptables -R INPUT 1 -i eth0 -p tcp -m multiport --dports 22 -j f2b-sshd &&
iptables -I INPUT 1 -s 198.18.0.1/32 -j ACCEPT && fail2ban-client set sshd banip 198.18.0.1 >/dev/null'`)
		before := onPi(t, l, f2b, "sudo -n iptables -S")
		stdout, _ := piwall(t, 1, "apply", site, "--yes", "--limit", "pi-01")
		if !strings.Contains(stdout, "a new SSH connection from 198.18.0.1 to tcp/22 would be dropped (by -A f2b-sshd -s 198.18.0.1/32 -j REJECT") {
			t.Errorf("apply: no lockout refusal in\n%s", stdout)
		}
		if after := onPi(t, l, f2b, "sudo -n iptables -S"); after != before {
			t.Errorf("pi-01 changed:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("a stale rules file never goes live unprotected", func(t *testing.T) {
		// pi-05 has no iptables and a rules.v4 dropping everything:
		// installing netfilter-persistent would load it before the
		// dead-man is armed, and at every boot after.
		stale := l.Pis[4]
		stdout, _ := piwall(t, 0, "apply", site, "--yes", "--limit", stale.Name)
		if got := outcomeRow(stdout, stale.Name); got[0] != "applied" {
			t.Errorf("apply: %q, want applied:\n%s", got, stdout)
		}
		if !strings.Contains(stdout, "was set aside before installing netfilter-persistent, which would have loaded it: /etc/iptables/rules.v4 → /etc/iptables/rules.v4.before-piwall-") {
			t.Errorf("apply does not say it set the stale file aside:\n%s", stdout)
		}
		reboot(t, l, stale.Name)
		piwall(t, 0, "plan", site, "--detailed-exitcode", "--limit", stale.Name)
	})

	// next changes the plan's rules, so that there is something to apply.
	next := labPlan(t, l, `  inbound {
    from  = ["198.18.0.1", "fd70:6977:616c::1"]
    ports = ["tcp/22"]
  }`, `  coexist = ["fail2ban", "docker"]`, "45s")

	t.Run("nftables.service enabled is refused until it is disabled", func(t *testing.T) {
		stale := l.Pis[4]
		onPi(t, l, stale, "sudo -n sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables </dev/null >/dev/null && systemctl enable -q nftables'")
		before := onPi(t, l, stale, "sudo -n iptables-save -t filter | grep -v '^#'")
		stdout, _ := piwall(t, 1, "plan", next, "--limit", stale.Name)
		for _, want := range []string{"failed: pi-05: plan: nftables.service is enabled: at boot it loads /etc/nftables.conf", "hint: if /etc/nftables.conf holds nothing you need: sudo systemctl disable nftables"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plan: no %q in\n%s", want, stdout)
			}
		}
		stdout, _ = piwall(t, 1, "apply", next, "--yes", "--limit", stale.Name)
		if got := outcomeRow(stdout, stale.Name); got[0] != "failed" {
			t.Errorf("apply: %q, want failed:\n%s", got, stdout)
		}
		if after := onPi(t, l, stale, "sudo -n iptables-save -t filter | grep -v '^#'"); after != before {
			t.Errorf("pi-05 changed:\n%s\nwas:\n%s", after, before)
		}
		onPi(t, l, stale, "sudo -n systemctl disable -q nftables")
		piwall(t, 0, "apply", next, "--yes", "--limit", stale.Name)
		reboot(t, l, stale.Name)
		piwall(t, 0, "plan", next, "--detailed-exitcode", "--limit", stale.Name)
	})

	t.Run("a read-only or full /etc/iptables is never called applied", func(t *testing.T) {
		stale := l.Pis[4]
		// next is applied and persisted; site is what is tried.
		persisted4, persisted6 := persisted(t, l, stale)
		before := onPi(t, l, stale, "sudo -n iptables-save -t filter | grep -v '^#'")
		unchanged := func(t *testing.T, what string) {
			t.Helper()
			if after := onPi(t, l, stale, "sudo -n iptables-save -t filter | grep -v '^#'"); after != before {
				t.Errorf("%s: the live rules changed:\n%s\nwas:\n%s", what, after, before)
			}
		}
		onPi(t, l, stale, "sudo -n mount -o bind,ro /etc/iptables /etc/iptables")
		stdout, _ := piwall(t, 1, "apply", site, "--yes", "--limit", stale.Name)
		if !strings.Contains(stdout, "/etc/iptables is on a read-only file system") || outcomeRow(stdout, stale.Name)[0] != "failed" {
			t.Errorf("apply on a read-only /etc/iptables:\n%s", stdout)
		}
		unchanged(t, "read-only")
		onPi(t, l, stale, "sudo -n umount /etc/iptables")

		// A tmpfs with room for one file of the two: the rules would not
		// outlast a reboot, and the second file does not fit.
		onPi(t, l, stale, "sudo -n sh -c 'mount -t tmpfs -o size=8k tmpfs /etc/iptables && head -c 4096 /dev/zero >/etc/iptables/filler'")
		stdout, _ = piwall(t, 1, "apply", site, "--yes", "--limit", stale.Name)
		if !strings.Contains(stdout, "persistence check: /etc/iptables is on tmpfs") || !strings.Contains(stdout, "--until-reboot") {
			t.Errorf("apply on a tmpfs /etc/iptables, without --until-reboot:\n%s", stdout)
		}
		unchanged(t, "tmpfs")
		// The same rules as site, reverted sooner.
		soon := labPlan(t, l, `  inbound {
    from  = ["198.18.0.1", "fd70:6977:616c::1", "198.18.0.66"]
    ports = ["tcp/22"]
  }`, `  coexist = ["fail2ban", "docker"]`, "10s")
		stdout, _ = piwall(t, 1, "apply", soon, "--yes", "--until-reboot", "--limit", stale.Name)
		if got := outcomeRow(stdout, stale.Name); got[0] != "reverted" || !strings.Contains(stdout, "the host could not save the new rules") {
			t.Errorf("apply --until-reboot on a full tmpfs: %q, want reverted, the rules not saved:\n%s", got, stdout)
		}
		unchanged(t, "full tmpfs, reverted")
		if left := onPi(t, l, stale, "ls -A /etc/iptables"); strings.TrimSpace(left) != "filler" {
			t.Errorf("left in /etc/iptables: %q", left)
		}
		reboot(t, l, stale.Name)
		stale = l.Pis[4]
		if v4, v6 := persisted(t, l, stale); v4 != persisted4 || v6 != persisted6 {
			t.Errorf("after the reboot, the persisted rules are not those of before")
		}
		piwall(t, 0, "plan", next, "--detailed-exitcode", "--limit", stale.Name)
	})

	t.Run("a reboot while armed leaves a lock that rollback --open passes", func(t *testing.T) {
		// piwall dies once the new rules are live, the dead-man armed; the
		// Pi reboots before it fires, and the transient timer dies with
		// the boot. Its lock names a run of an earlier boot.
		if out, err := piwallProcess(t, "applied", "apply", next, "--yes", "--limit", hot.Name); err == nil {
			t.Fatalf("piwall was not killed:\n%s", out)
		}
		if lock := onPi(t, l, hot, "sudo -n cat /var/lib/piwall/lock"); !strings.Contains(lock, "boot=") {
			t.Fatalf("no lock after the kill: %q", lock)
		}
		reboot(t, l, hot.Name)
		hot = l.Pis[1]
		stdout, _ := piwall(t, 0, "plan", site, "--limit", hot.Name)
		if !strings.Contains(stdout, "was left by a run the host's reboot ended; the next apply or rollback takes it over") {
			t.Errorf("plan does not say the lock is of an earlier boot:\n%s", stdout)
		}
		stdout, _ = piwall(t, 0, "rollback", hot.Name, "--open", "--plan", site, "--yes")
		if got := outcomeRow(stdout, hot.Name); got[0] != "applied" || !strings.Contains(stdout, "took over a stale lock: run=") {
			t.Errorf("rollback --open: %q, want applied over the stale lock:\n%s", got, stdout)
		}
		if nat := onPi(t, l, hot, "sudo -n iptables -t nat -S POSTROUTING"); !strings.Contains(nat, "-j MASQUERADE") {
			t.Errorf("the hotspot's MASQUERADE after rollback --open:\n%s", nat)
		}
	})
}

// TestE2EHostilePis: a Pi that answers the facts command without end and
// one that never answers fail alone, each with what went wrong, within the
// facts timeout; the rest of the fleet is planned and applied.
func TestE2EHostilePis(t *testing.T) {
	l := e2eLabOf(t, lab.Config{Pis: 3, Profiles: map[string]lab.Profile{"pi-02": lab.Flood, "pi-03": lab.Silent}})
	site := labPlan(t, l, adminSSH, "", "20s")
	for _, args := range [][]string{{"plan", site}, {"apply", site, "--yes"}} {
		start := time.Now()
		stdout, _ := piwall(t, 1, append(args, "--facts-timeout", "8s")...)
		if took := time.Since(start); took > 40*time.Second {
			t.Errorf("%s took %v with a facts timeout of 8s", args[0], took)
		}
		for _, want := range []string{
			"pi-02: facts: the command printed more than 16 MiB on its stdout; piwall stopped reading and closed the connection",
			"hint: log in and see what a command prints there (ssh pi@198.18.2.2 sudo -n true)",
			"pi-03: facts: the facts command did not answer within 8s",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: no %q in\n%s", args[0], want, stdout)
			}
		}
		if args[0] == "apply" {
			if got := outcomeRow(stdout, "pi-01"); got[0] != "applied" {
				t.Errorf("apply: pi-01 %q, want applied:\n%s", got, stdout)
			}
		} else if !strings.Contains(stdout, "pi-01 (198.18.2.1:22") || !strings.Contains(stdout, "to add") {
			t.Errorf("plan: pi-01 is not planned:\n%s", stdout)
		}
	}
}

// TestE2EHostServices: the Pi's own network keeps working under piwall's
// rules: a DHCP lease renews (busybox's udhcpd on another Pi, 30-second
// leases, busybox's udhcpc on the Pi, which renews by unicast from udp/68 at
// half the lease), and the Pi's .local name answers through avahi-daemon,
// resolved from another Pi (first with mdns = false, where it must not).
func TestE2EHostServices(t *testing.T) {
	l := e2eLabOf(t, lab.Config{Pis: 4, Systemd: true})
	client, server, avahi, asker := l.Pis[0], l.Pis[1], l.Pis[2], l.Pis[3]
	install := func(p lab.Pi, pkgs string) {
		onPi(t, l, p, "sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "+pkgs+" </dev/null >/dev/null'")
	}
	install(server, "busybox-static")
	install(client, "busybox-static")
	onPi(t, l, server, `sudo -n sh -c 'printf "start 198.18.9.100\nend 198.18.9.110\ninterface eth0\noption subnet 255.255.0.0\noption lease 30\nmin_lease 10\nlease_file /var/lib/udhcpd.leases\n" >/etc/udhcpd.conf &&
touch /var/lib/udhcpd.leases && setsid busybox udhcpd -f /etc/udhcpd.conf </dev/null >/var/log/udhcpd.log 2>&1 &'`)
	// The client's script only adds the address, with the lease's
	// lifetime: one it does not renew is gone when the lease ends. Its
	// UDP conntrack entries last 5 s (its network namespace's own
	// setting): with real leases, hours apart, a renewal finds none and
	// is a new connection, where with 30-second ones it would pass as a
	// reply of the last.
	onPi(t, l, client, "sudo -n sysctl -q -w net.netfilter.nf_conntrack_udp_timeout=5 net.netfilter.nf_conntrack_udp_timeout_stream=5")
	onPi(t, l, client, `sudo -n sh -c 'cat >/etc/lab-udhcpc.sh <<"EOF"
#!/bin/sh
case "$1" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" valid_lft "$lease" preferred_lft "$lease" && echo "$1" >>/var/log/lab-dhcp.log ;;
esac
EOF
chmod 755 /etc/lab-udhcpc.sh && setsid busybox udhcpc -f -i eth0 -s /etc/lab-udhcpc.sh </dev/null >/var/log/udhcpc.log 2>&1 &'`)
	install(avahi, "avahi-daemon libnss-mdns")
	install(asker, "avahi-daemon avahi-utils libnss-mdns")

	leased := func() string {
		out := onPi(t, l, client, "ip -o -4 addr show dev eth0 | grep -o '198\\.18\\.9\\.[0-9]*/16.*dynamic' || true")
		return strings.TrimSpace(out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for leased() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("pi-01 got no lease: %s", onPi(t, l, client, "cat /var/log/udhcpc.log; sudo -n cat /var/log/lab-dhcp.log || true"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	resolves := func() (string, bool) {
		// A fresh asker: what its avahi-daemon cached does not count.
		onPi(t, l, asker, "sudo -n systemctl restart avahi-daemon && sleep 2")
		out, err := l.Run(context.Background(), asker, "avahi-resolve -4 -n pi-03.local")
		return strings.TrimSpace(out), err == nil && strings.Contains(out, avahi.Addrs.V4.String())
	}
	if out, ok := resolves(); !ok {
		t.Fatalf("pi-03.local does not resolve before piwall: %q", out)
	}

	t.Run("mdns = false drops the answers", func(t *testing.T) {
		off := labPlan(t, l, adminSSH, "  mdns = false", "20s")
		piwall(t, 0, "apply", off, "--yes", "--limit", avahi.Name)
		if out, ok := resolves(); ok {
			t.Errorf("pi-03.local resolves with mdns = false: %q", out)
		}
	})

	t.Run("kept by default", func(t *testing.T) {
		site := labPlan(t, l, adminSSH, "", "20s")
		stdout, _ := piwall(t, 0, "plan", site, "--limit", client.Name+","+avahi.Name)
		for _, want := range []string{"keeps dhcp: eth0's 198.18.9.", "keeps mdns: avahi-daemon runs (mdns = false turns it off)", "keeps mld: IPv6 is up on eth0"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plan: no %q in\n%s", want, stdout)
			}
		}
		piwall(t, 0, "apply", site, "--yes", "--limit", client.Name+","+avahi.Name)
		before := strings.Count(onPi(t, l, client, "sudo -n cat /var/log/lab-dhcp.log"), "renew")
		// Three renewals at half of a 30-second lease; a client whose
		// unicast renewal is dropped renews only when rebinding, at 7/8.
		time.Sleep(50 * time.Second)
		renewed := strings.Count(onPi(t, l, client, "sudo -n cat /var/log/lab-dhcp.log"), "renew") - before
		if renewed < 3 {
			t.Errorf("%d renewals in 50 s of 30-second leases, want at least 3:\n%s", renewed, onPi(t, l, server, "sudo -n cat /var/log/udhcpd.log"))
		}
		if leased() == "" {
			t.Error("pi-01 lost its leased address")
		}
		if out, ok := resolves(); !ok {
			t.Errorf("pi-03.local does not resolve under piwall's rules: %q", out)
		}
		piwall(t, 0, "plan", site, "--detailed-exitcode", "--limit", client.Name+","+avahi.Name)
	})
}

// TestE2ENames: hostnames in a plan follow DNS on the Pi, without piwall.
// A systemd Pi with dns_refresh = "20s": api.lab moves to api-next.lab's
// addresses and the Pi reaches it there after a refresh, the old address
// leaving the set after the grace window; with the lab's DNS server
// stopped the sets keep their last-known addresses; a name answering with
// other addresses on every lookup leaves two plans in a row with no
// changes; a reboot loads the sets before the rules, before any piwall
// run; rollback --open leaves no set, timer or script of piwall's.
func TestE2ENames(t *testing.T) {
	if err := lab.Check(); err != nil {
		t.Skipf("no lab: %v (%s)", err, strings.Join(modules.Hints(err), "; "))
	}
	home := t.TempDir()
	l := lab.Start(t, lab.Config{Pis: 1, Dir: filepath.Join(t.TempDir(), "lab"), Systemd: true})
	t.Setenv("HOME", home)
	p := l.Pis[0]
	site := labPlan(t, l, adminSSH, "", "20s")
	src, err := os.ReadFile(site)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(site, []byte(strings.Replace(string(src), "defaults {\n", "defaults {\n  dns_refresh   = \"20s\"\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	api, next := lab.Services[1].Addrs, lab.Services[3].Addrs
	if lab.Services[1].Name != "api.lab" || lab.Services[3].Name != "api-next.lab" {
		t.Fatalf("the lab's services: %+v", lab.Services)
	}
	set4 := firewall.SetName("api.lab", firewall.IPv4)
	reach := func(host string) string {
		t.Helper()
		return strings.TrimSpace(onPi(t, l, p, fmt.Sprintf(`timeout 5 bash -c 'exec 3<>/dev/tcp/%s/443 && head -n1 <&3' 2>/dev/null || echo unreachable`, host)))
	}
	inSet := func(a netip.Addr) bool {
		t.Helper()
		return strings.TrimSpace(onPi(t, l, p, fmt.Sprintf("sudo -n ipset test %s %s >/dev/null 2>&1 && echo yes || echo no", set4, a))) == "yes"
	}
	// waitFor polls cond every second for at most d, and says how long it took.
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > d {
				t.Fatalf("%s: not within %s", what, d)
			}
			time.Sleep(time.Second)
		}
		t.Logf("%s: after %.1f s", what, time.Since(start).Seconds())
	}

	stdout, _ := piwall(t, 0, "apply", site, "--yes")
	if got := reach("api.lab"); got != "api" {
		t.Fatalf("after apply, api.lab answers %q, want api:\n%s", got, stdout)
	}
	if v4, _ := live(t, l, p); !strings.Contains(v4, "--match-set "+set4+" dst") {
		t.Fatalf("the live rules do not match api.lab's set:\n%s", v4)
	}
	if got := reach("blocked.lab"); got != "unreachable" {
		t.Errorf("blocked.lab answers %q", got)
	}

	t.Run("a name whose answers change: two plans in a row, no changes", func(t *testing.T) {
		if err := l.SetDNS("api.lab", api.V4, next.V4, api.V6); err != nil {
			t.Fatal(err)
		}
		stdout, _ := piwall(t, 0, "plan", site, "--detailed-exitcode")
		for _, want := range []string{"refresh: api.lab every 20s, last ", "name: dashboard.lab → dashboard.cdn.lab → edge.cdn.lab → 198.18.1.10"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plan lacks %q:\n%s", want, stdout)
			}
		}
		if err := l.SetDNS("api.lab", next.V6, api.V4); err != nil {
			t.Fatal(err)
		}
		piwall(t, 0, "plan", site, "--detailed-exitcode")
		if err := l.SetDNS("api.lab", api.V4, api.V6); err != nil {
			t.Fatal(err)
		}
		// What the sets took in meanwhile leaves with the grace window.
		waitFor("api.lab's set back to its own address", 2*time.Minute, func() bool { return !inSet(next.V4) })
	})

	t.Run("the name moves, and the Pi follows it without piwall", func(t *testing.T) {
		if err := l.SetDNS("api.lab", next.V4, next.V6); err != nil {
			t.Fatal(err)
		}
		waitFor("api.lab reached at its new address", 45*time.Second, func() bool { return reach("api.lab") == "api-next" })
		if !inSet(api.V4) {
			t.Errorf("the old address left %s before the grace window", set4)
		}
		waitFor("the old address out of the set", 2*time.Minute, func() bool { return !inSet(api.V4) })
		if got := reach(api.V4.String()); got != "unreachable" {
			t.Errorf("the old address still answers through the firewall: %q", got)
		}
	})

	t.Run("a DNS outage keeps the last-known addresses", func(t *testing.T) {
		if err := l.PauseDNS(true); err != nil {
			t.Fatal(err)
		}
		status := "sudo -n cat /var/lib/piwall/names/state/" + set4 + ".status"
		waitFor("a failed refresh recorded", 3*time.Minute, func() bool { return strings.Contains(onPi(t, l, p, status), "failed ") })
		if got := reach(next.V4.String()); got != "api-next" {
			t.Errorf("during the outage api.lab's last-known address answers %q, want api-next", got)
		}
		if err := l.PauseDNS(false); err != nil {
			t.Fatal(err)
		}
		waitFor("refreshes again", 2*time.Minute, func() bool { return !strings.Contains(onPi(t, l, p, status), "failed ") })
		if got := reach("api.lab"); got != "api-next" {
			t.Errorf("after the outage api.lab answers %q", got)
		}
	})

	t.Run("a reboot loads the sets before the rules", func(t *testing.T) {
		reboot(t, l, p.Name)
		p = l.Pis[0]
		if !inSet(next.V4) {
			t.Errorf("after the reboot %s lacks %s:\n%s", set4, next.V4, onPi(t, l, p, "sudo -n ipset save"))
		}
		if got := reach("api.lab"); got != "api-next" {
			t.Errorf("after the reboot api.lab answers %q, want api-next", got)
		}
		if v4, _ := live(t, l, p); !strings.Contains(v4, "--match-set "+set4+" dst") {
			t.Errorf("after the reboot the rules are not live:\n%s", v4)
		}
	})

	t.Run("rollback --open leaves nothing of the names", func(t *testing.T) {
		piwall(t, 0, "rollback", "pi-01", "--open", "--plan", site, "--yes")
		left := onPi(t, l, p, `sudo -n ipset list -n | grep piwall- ; ls -d /var/lib/piwall/names /etc/systemd/system/piwall-names.* 2>/dev/null; systemctl list-timers --all --no-legend | grep piwall-names; grep -c piwall- /etc/iptables/ipsets 2>/dev/null | grep -v '^0$'; true`)
		if strings.TrimSpace(left) != "" {
			t.Errorf("rollback --open left:\n%s", left)
		}
	})
}

// TestE2EAnsibleInventory applies a plan whose hosts come from an Ansible
// INI inventory, as an Ansible user keeps it: the lab's Pis in group kiosk,
// reached at ansible_host as ansible_user with
// ansible_ssh_private_key_file, and nothing in ~/.ssh/config to help.
func TestE2EAnsibleInventory(t *testing.T) {
	l := e2eLab(t, 2)
	if err := os.WriteFile(filepath.Join(os.Getenv("HOME"), ".ssh", "config"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var ini strings.Builder
	ini.WriteString("# the lab's Pis, as Ansible knows them\n[kiosk]\n")
	for _, p := range l.Pis {
		fmt.Fprintf(&ini, "%s ansible_host=%s\n", p.Name, p.Addrs.V4)
	}
	fmt.Fprintf(&ini, "\n[kiosk:vars]\nansible_user=pi\nansible_ssh_private_key_file=%s\n", l.Key())
	plan := fmt.Sprintf(`defaults {
  known_hosts  = %q
  revert_after = "20s"
}
allowlist "kiosk" {
%s
  outbound {
    to    = ["dashboard.lab", "api.lab"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.lab"]
    ports = ["udp/123"]
  }
  dns  = "system"
  ping = true
}
group "kiosk" {
  allowlists = ["kiosk"]
}
ansible_inventory {
  path = "hosts.ini"
}
`, l.KnownHosts(), adminSSH)
	for name, src := range map[string]string{"hosts.ini": ini.String(), "site.hcl": plan} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	out, _ := piwall(t, 0, "inventory", dir)
	for _, p := range l.Pis {
		want := regexp.MustCompile(`(?m)^host ` + p.Name + `\n  groups +kiosk\n  allowlists +kiosk\n  hostname +` + regexp.QuoteMeta(p.Addrs.V4.String()) +
			`\n  user +pi\n  port +22\n  identity files +` + regexp.QuoteMeta(l.Key()) + `\n`)
		if !want.MatchString(out) {
			t.Errorf("inventory does not show %s as the inventory has it:\n%s", p.Name, out)
		}
	}
	stdout, _ := piwall(t, 0, "apply", dir, "--yes")
	for _, p := range l.Pis {
		if got := outcomeRow(stdout, p.Name); got[0] != "applied" {
			t.Errorf("apply: %s's outcome %q, want applied:\n%s", p.Name, got, stdout)
		}
		wantTraffic(t, l, p)
	}
	stdout, _ = piwall(t, 0, "plan", dir, "--detailed-exitcode", "--limit", "kiosk")
	if !strings.Contains(stdout, "Plan: 0 hosts to change, 2 unchanged, 0 failed.") {
		t.Errorf("a second plan:\n%s", stdout)
	}
}
