package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/runner/sim"
)

// simHosts, in the environment, makes the test binary a fleet of that many
// simulated hosts (see runner/sim), in a process of its own so that the
// controller's memory is measured alone.
const simHosts = "PIWALL_TEST_SIM_HOSTS"

func init() {
	n, err := strconv.Atoi(os.Getenv(simHosts))
	if err != nil || n <= 0 {
		return
	}
	f, err := sim.Start(n, os.Getenv("PIWALL_TEST_SIM_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, h := range f.Hosts {
		fmt.Printf("%s %d\n", h.Name, h.Addr.Port)
	}
	fmt.Println("ready")
	os.Stdin.Read(make([]byte, 1)) // until the controller goes
	os.Exit(0)
}

// BenchmarkScale plans and applies a fleet of simulated hosts from one
// controller and prints wall time and the controller's peak memory:
//
//	go test ./cmd/piwall -run '^$' -bench Scale -benchtime 1x [-hosts 1000] [-parallel 100]
func BenchmarkScale(b *testing.B) {
	n, parallel := 1000, 100
	if v, err := strconv.Atoi(os.Getenv("PIWALL_SCALE_HOSTS")); err == nil {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("PIWALL_SCALE_PARALLEL")); err == nil {
		parallel = v
	}
	dir := b.TempDir()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	fleet := exec.Command(exe, "-test.run", "^$")
	fleet.Env = append(os.Environ(), simHosts+"="+strconv.Itoa(n), "PIWALL_TEST_SIM_DIR="+dir)
	stdin, _ := fleet.StdinPipe()
	stdout, _ := fleet.StdoutPipe()
	fleet.Stderr = os.Stderr
	if err := fleet.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); fleet.Wait() }()
	var hosts strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		name, port, _ := strings.Cut(sc.Text(), " ")
		fmt.Fprintf(&hosts, "host %q {\n  address = \"127.0.0.1\"\n  port    = %s\n  groups  = [\"kiosk\"]\n}\n", name, port)
	}
	site := filepath.Join(dir, "site.hcl")
	plan := fmt.Sprintf(`defaults {
  user          = "root"
  identity_file = %q
  known_hosts   = %q
}
allowlist "kiosk" {
  inbound {
    from  = ["127.0.0.1"]
    ports = ["tcp/1024-65535"]
  }
  outbound {
    to    = ["dashboard.example.com", "api.example.com"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
}
group "kiosk" {
  allowlists = ["kiosk"]
}
rollout {
  parallel = %d
  canary   = 0
  batch    = 0
}
%s`, filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "known_hosts"), parallel, hosts.String())
	if err := os.WriteFile(site, []byte(plan), 0o644); err != nil {
		b.Fatal(err)
	}

	for i := 0; i < b.N; i++ {
		start := time.Now()
		code, out, stderr := runPiwall(b, "plan", site, "--detailed-exitcode")
		planTime := time.Since(start)
		if code != 2 || !strings.Contains(out, fmt.Sprintf("Plan: %d hosts to change, 0 unchanged, 0 failed.", n)) {
			b.Fatalf("plan: exit %d\n%s\n%s", code, tail(out), tail(stderr))
		}
		start = time.Now()
		code, out, stderr = runPiwall(b, "apply", site, "--yes")
		applyTime := time.Since(start)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("Done: %d applied, 0 unchanged, 0 reverted, 0 failed, 0 skipped.", n)) {
			b.Fatalf("apply: exit %d\n%s\n%s", code, tail(out), tail(stderr))
		}
		start = time.Now()
		code, out, _ = runPiwall(b, "plan", site, "--detailed-exitcode")
		againTime := time.Since(start)
		if code != 0 {
			b.Fatalf("second plan: exit %d\n%s", code, tail(out))
		}
		fmt.Printf("\nscale: %d simulated hosts, %d in flight, one controller, %d cores\n", n, parallel, runtime.NumCPU())
		fmt.Printf("  plan (every host changes)   %6.1f s\n", planTime.Seconds())
		fmt.Printf("  apply                       %6.1f s\n", applyTime.Seconds())
		fmt.Printf("  plan again (no changes)     %6.1f s\n", againTime.Seconds())
		fmt.Printf("  controller peak memory      %6.0f MB (VmHWM)\n", peakMB())
		b.ReportMetric(planTime.Seconds(), "plan-s")
		b.ReportMetric(applyTime.Seconds(), "apply-s")
		b.ReportMetric(peakMB(), "peak-MB")
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// peakMB is this process's peak resident memory.
func peakMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}
