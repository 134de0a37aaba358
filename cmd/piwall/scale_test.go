package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
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
	rtt, _ := time.ParseDuration(os.Getenv("PIWALL_TEST_SIM_RTT"))
	f, err := sim.Start(n, os.Getenv("PIWALL_TEST_SIM_DIR"), rtt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, h := range f.Hosts {
		fmt.Printf("%s %d\n", h.Name, h.Addr.Port)
	}
	fmt.Println("ready")
	stopProfile := profileSim(os.Getenv("PIWALL_SCALE_SIM_CPUPROFILE"))
	os.Stdin.Read(make([]byte, 1)) // until the controller goes
	stopProfile()
	os.Exit(0)
}

// profileSim profiles the simulated hosts' CPU into file, if named, until
// the function it returns is called.
func profileSim(file string) func() {
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// BenchmarkScale plans and applies a fleet of simulated hosts from one
// controller and prints wall time and the controller's peak memory:
//
//	go test ./cmd/piwall -run '^$' -bench Scale -benchtime 1x
//
// PIWALL_SCALE_HOSTS and PIWALL_SCALE_PARALLEL (default 1000 and 100) set
// the fleet's size and the hosts in flight, PIWALL_SCALE_RTT (default 0)
// how long each simulated host's answers take to reach the controller.
func BenchmarkScale(b *testing.B) {
	n, parallel := 1000, 100
	if v, err := strconv.Atoi(os.Getenv("PIWALL_SCALE_HOSTS")); err == nil {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("PIWALL_SCALE_PARALLEL")); err == nil {
		parallel = v
	}
	for i := 0; i < b.N; i++ {
		r := runScale(b, n, parallel)
		rtt := os.Getenv("PIWALL_SCALE_RTT")
		if rtt == "" {
			rtt = "0"
		}
		fmt.Printf("\nscale: %d simulated hosts, %d in flight, RTT %s, one controller, %d cores\n", n, parallel, rtt, runtime.NumCPU())
		fmt.Printf("  plan (every host changes)   %6.1f s\n", r.plan.Seconds())
		fmt.Printf("  apply                       %6.1f s\n", r.apply.Seconds())
		fmt.Printf("  plan again (no changes)     %6.1f s\n", r.again.Seconds())
		fmt.Printf("  controller peak memory      %6.0f MB (VmHWM)\n", peakMB())
		b.ReportMetric(r.plan.Seconds(), "plan-s")
		b.ReportMetric(r.apply.Seconds(), "apply-s")
		b.ReportMetric(peakMB(), "peak-MB")
	}
}

// TestSimulatedFleet runs the scale benchmark's round on a few simulated
// hosts, so that the simulation keeps answering as the real scripts do.
func TestSimulatedFleet(t *testing.T) {
	runScale(t, 12, 4)
}

type scaleTimes struct{ plan, apply, again time.Duration }

// runScale starts n simulated hosts in a process of their own, then plans,
// applies and plans again with parallel hosts in flight, and fails unless
// every host changes, is applied, and is then unchanged.
func runScale(tb testing.TB, n, parallel int) scaleTimes {
	tb.Helper()
	dir := tb.TempDir()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	fleet := exec.Command(exe, "-test.run", "^$")
	fleet.Env = append(os.Environ(), simHosts+"="+strconv.Itoa(n), "PIWALL_TEST_SIM_DIR="+dir, "PIWALL_TEST_SIM_RTT="+os.Getenv("PIWALL_SCALE_RTT"))
	stdin, _ := fleet.StdinPipe()
	stdout, _ := fleet.StdoutPipe()
	fleet.Stderr = os.Stderr
	if err := fleet.Start(); err != nil {
		tb.Fatal(err)
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
		tb.Fatal(err)
	}

	var r scaleTimes
	start := time.Now()
	code, out, stderr := runPiwall(tb, "plan", site, "--detailed-exitcode")
	r.plan = time.Since(start)
	if code != 2 || !strings.Contains(out, fmt.Sprintf("Plan: %d hosts to change, 0 unchanged, 0 failed.", n)) {
		tb.Fatalf("plan: exit %d\n%s\n%s", code, tail(out), tail(stderr))
	}
	start = time.Now()
	code, out, stderr = runPiwall(tb, "apply", site, "--yes")
	r.apply = time.Since(start)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("Done: %d applied, 0 unchanged, 0 reverted, 0 failed, 0 skipped.", n)) {
		tb.Fatalf("apply: exit %d\n%s\n%s", code, tail(out), tail(stderr))
	}
	start = time.Now()
	code, out, stderr = runPiwall(tb, "plan", site, "--detailed-exitcode")
	r.again = time.Since(start)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("Plan: 0 hosts to change, %d unchanged, 0 failed.", n)) {
		tb.Fatalf("second plan: exit %d\n%s\n%s", code, tail(out), tail(stderr))
	}
	return r
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
