//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piwall/piwall/runner/sim"
)

// simHosts, in the environment, makes the test binary a fleet of that many
// simulated hosts (see runner/sim), in a process of its own so that the
// controller's memory is measured alone.
const simHosts = "PIWALL_TEST_SIM_HOSTS"

func init() {
	if os.Getenv(asCLI) == "1" {
		profileCLI(os.Getenv("PIWALL_SCALE_PROFILE"))
	}
	n, err := strconv.Atoi(os.Getenv(simHosts))
	if err != nil || n <= 0 {
		return
	}
	// The simulated hosts' memory is not what is measured, their CPU
	// shares the machine with the controller's: collect less often.
	debug.SetGCPercent(400)
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

// profileCLI profiles piwall, run as the test binary, into files named
// prefix: its CPU in chunks of 5 s (prefix.cpu.N, to merge with go tool
// pprof: piwall exits without a word to the profiler, and the last chunk
// is lost), and its heap each time the live heap is the largest yet
// (prefix.heap).
func profileCLI(prefix string) {
	if prefix == "" {
		return
	}
	go func() {
		for i := 0; ; i++ {
			f, err := os.Create(fmt.Sprintf("%s.cpu.%d", prefix, i))
			if err != nil || pprof.StartCPUProfile(f) != nil {
				return
			}
			time.Sleep(5 * time.Second)
			pprof.StopCPUProfile()
			f.Close()
		}
	}()
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var most uint64
		for range time.Tick(100 * time.Millisecond) {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > most {
				most = v
				if f, err := os.Create(prefix + ".heap"); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
		}
	}()
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

// BenchmarkScale plans, applies and plans again a fleet of simulated
// hosts from one controller, and prints a table of each phase's wall time,
// hosts that succeeded and failed, and the controller's peak memory, beside
// the targets. One command, 10,000 hosts 50 ms away:
//
//	PIWALL_SCALE_HOSTS=10000 PIWALL_SCALE_RTT=50ms go test ./cmd/piwall -run '^$' -bench Scale -benchtime 1x -timeout 30m
//
// PIWALL_SCALE_HOSTS (default 1000) is the fleet's size, PIWALL_SCALE_RTT
// (default 0) how long each simulated host's answers take to reach the
// controller, PIWALL_SCALE_PARALLEL the hosts in flight (default: 100 up
// to 1,000 hosts, one in ten of a bigger fleet, at most 1,000).
//
// Each simulated host is an SSH server of its own (its own port, a real
// handshake, the controller checks its host key against known_hosts and
// logs in with a key), in a process of their own (runner/sim). Each phase
// is a piwall process of its own, as an operator runs it: the test binary
// run as piwall. Its peak memory is its own peak resident set (getrusage's
// ru_maxrss), the simulated hosts' not counted; the CPU time of both is in
// the table, and the load average after each phase, for the machine may
// be busy with more than this. The targets are piwall's, for 10,000
// hosts on a controller of 2 cores; a phase that misses one says MISS, and
// a host that fails fails the benchmark, after the table.
//
// The whole run takes some two minutes at 10,000 hosts, most of it CPU:
// the simulated hosts' handshakes and answers take a third of it, on the
// same cores. PIWALL_SCALE_PROFILE=PREFIX writes each phase's CPU and
// heap profiles (PREFIX.plan.cpu.N, PREFIX.apply.heap, ...: merge the CPU
// chunks with go tool pprof -proto), PIWALL_SCALE_SIM_CPUPROFILE=FILE the
// simulated hosts' CPU profile.
func BenchmarkScale(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("PIWALL_SCALE_HOSTS")); err == nil {
		n = v
	}
	parallel := min(max(100, n/10), 1000)
	if v, err := strconv.Atoi(os.Getenv("PIWALL_SCALE_PARALLEL")); err == nil {
		parallel = v
	}
	rtt := os.Getenv("PIWALL_SCALE_RTT")
	if rtt == "" {
		rtt = "0"
	}
	for i := 0; i < b.N; i++ {
		r := runScale(b, n, parallel, rtt)
		r.print(os.Stdout)
		b.ReportMetric(r.phases[0].wall.Seconds(), "plan-s")
		b.ReportMetric(r.phases[1].wall.Seconds(), "apply-s")
		b.ReportMetric(r.phases[2].wall.Seconds(), "again-s")
		b.ReportMetric(max(r.phases[0].peakMB, r.phases[1].peakMB, r.phases[2].peakMB), "peak-MB")
		if err := r.err(); err != nil {
			b.Error(err)
		}
	}
}

// TestSimulatedFleet runs the scale benchmark's round on a few simulated
// hosts, so that the simulation keeps answering as the real scripts do.
func TestSimulatedFleet(t *testing.T) {
	r := runScale(t, 12, 4, "0")
	if err := r.err(); err != nil {
		t.Error(err)
	}
}

// piwall's targets for 10,000 hosts on a controller of 2 cores.
const (
	targetPlan   = 20 * time.Second
	targetApply  = 90 * time.Second
	targetPeakMB = 1024
)

type scaleResult struct {
	hosts, parallel int
	rtt             string
	phases          [3]phase // plan, apply, plan again
}

// phase is one piwall command's run.
type phase struct {
	name           string
	target         time.Duration
	wall           time.Duration
	ok, failed     int
	peakMB         float64       // the controller's peak resident set
	cpu, simCPU    time.Duration // user and system time of the controller, of the simulated hosts
	load           string        // the 1-minute load average after it
	code           int
	stdout, stderr string
}

func (r *scaleResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nscale: %d simulated hosts, %d in flight, RTT %s, %d cores, one controller\n", r.hosts, r.parallel, r.rtt, runtime.NumCPU())
	fmt.Fprintf(w, "  %-12s %8s %8s  %6s %6s  %9s %8s  %8s %8s  %5s\n", "", "wall", "target", "ok", "failed", "peak RSS", "target", "ctl CPU", "sim CPU", "load")
	for _, p := range r.phases {
		fmt.Fprintf(w, "  %-12s %6.1f s %s %-4s  %6d %6d  %6.0f MB %s %-3s  %6.1f s %6.1f s  %5s\n",
			p.name, p.wall.Seconds(), fmt.Sprintf("≤ %3.0f s", p.target.Seconds()), verdict(p.wall <= p.target),
			p.ok, p.failed, p.peakMB, fmt.Sprintf("≤ %4d MB", targetPeakMB), verdict(p.peakMB <= targetPeakMB),
			p.cpu.Seconds(), p.simCPU.Seconds(), p.load)
	}
	fmt.Fprintln(w, "  peak RSS: the controller process's own (getrusage ru_maxrss), the simulated hosts run in another; load: 1-minute load average after the phase")
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// err reports the phases in which a host failed.
func (r *scaleResult) err() error {
	var errs []string
	for _, p := range r.phases {
		if p.failed > 0 || p.ok != r.hosts {
			errs = append(errs, fmt.Sprintf("%s: exit %d, %d ok, %d failed\n%s\n%s", p.name, p.code, p.ok, p.failed, failures(p.stdout), tail(p.stderr)))
		}
	}
	if errs == nil {
		return nil
	}
	return errors.New(strings.Join(errs, "\n"))
}

// runScale starts n simulated hosts in a process of their own, then plans,
// applies and plans again with parallel hosts in flight, each a piwall
// process of its own, and returns what each phase did: a host counts as
// ok when the plan finds it to change, the apply applies it, and the
// second plan finds it unchanged.
func runScale(tb testing.TB, n, parallel int, rtt string) *scaleResult {
	tb.Helper()
	dir := tb.TempDir()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	fleet := exec.Command(exe, "-test.run", "^$")
	fleet.Env = append(os.Environ(), simHosts+"="+strconv.Itoa(n), "PIWALL_TEST_SIM_DIR="+dir, "PIWALL_TEST_SIM_RTT="+rtt)
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
	if sc.Err() != nil {
		tb.Fatal(sc.Err())
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

	r := &scaleResult{hosts: n, parallel: parallel, rtt: rtt}
	planRE := regexp.MustCompile(`Plan: (\d+) hosts? to change, (\d+) unchanged, (\d+) failed\.`)
	doneRE := regexp.MustCompile(`Done: (\d+) applied, (\d+) unchanged, (\d+) reverted, (\d+) failed, (\d+) skipped\.`)
	count := func(re *regexp.Regexp, out string, i int) int {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		v, _ := strconv.Atoi(m[i])
		return v
	}
	r.phases[0] = runPhase(tb, exe, fleet.Process.Pid, "plan", targetPlan, "plan", site, "--detailed-exitcode")
	r.phases[0].ok = count(planRE, r.phases[0].stdout, 1)
	r.phases[1] = runPhase(tb, exe, fleet.Process.Pid, "apply", targetApply, "apply", site, "--yes")
	r.phases[1].ok = count(doneRE, r.phases[1].stdout, 1)
	r.phases[2] = runPhase(tb, exe, fleet.Process.Pid, "plan again", targetPlan, "plan", site, "--detailed-exitcode")
	r.phases[2].ok = count(planRE, r.phases[2].stdout, 2)
	for i := range r.phases {
		r.phases[i].failed = n - r.phases[i].ok
	}
	return r
}

// runPhase runs piwall with args in a process of its own (the test binary
// as piwall's main) and measures it, and the simulated hosts' CPU meanwhile.
func runPhase(tb testing.TB, exe string, simPid int, name string, target time.Duration, args ...string) phase {
	tb.Helper()
	p := phase{name: name, target: target}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), asCLI+"=1")
	if prefix := os.Getenv("PIWALL_SCALE_PROFILE"); prefix != "" {
		cmd.Env = append(cmd.Env, "PIWALL_SCALE_PROFILE="+prefix+"."+strings.ReplaceAll(name, " ", "-"))
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	simBefore := processCPU(simPid)
	start := time.Now()
	err := cmd.Run()
	p.wall = time.Since(start)
	p.simCPU = processCPU(simPid) - simBefore
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Fatal(err)
	}
	p.code = cmd.ProcessState.ExitCode()
	p.stdout, p.stderr = out.String(), errOut.String()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		p.peakMB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	p.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		p.load = strings.Fields(string(b))[0]
	}
	return p
}

// processCPU is the user and system time a process has used so far.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name, which is in parentheses:
	// utime and stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// failures returns the first lines of out that say a host failed.
func failures(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "failed") && len(lines) < 10 {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
