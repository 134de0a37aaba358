//go:build linux

// Package bench_test measures piwall against Ansible and against the floor,
// a plain parallel OpenSSH script, on the lab's real Pis.
//
// For each tool it times, on 20 lab Pis, the same three jobs: (a) fresh Pis,
// iptables installed from the lab's apt repository; (b) a changed allowlist on
// provisioned Pis; (c) a re-run that changes nothing. All three tools put
// exactly the rulesets piwall renders for each host (`piwall render`) behind
// a dead-man that reverts unless a new connection confirms, and persist them
// to /etc/iptables/rules.v4 and rules.v6. Every fresh run gets a fresh lab;
// starting and stopping the lab is not counted. It prints the median wall
// time of each cell and the ratios Ansible/piwall and piwall/floor.
//
// Run it, as root with Debian's ansible package installed, with:
//
//	sudo go test ./examples/bench -run '^$' -bench VersusAnsible -benchtime 1x -timeout 90m
//
// BENCH_PIS and BENCH_RUNS (default 20 and 3) make smaller runs; BENCH_TOOLS
// (say "ansible,floor") runs only some of the tools.
//
// Ansible needs python3 (and python3-apt for its apt module) on the Pi, which
// Raspberry Pi OS has and the lab's minimal Pis do not: before Ansible's
// runs, untimed, the benchmark copies this machine's python3 (Debian
// bookworm, like the Pis) onto each Pi.
package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piwall/piwall/examples/lab"
	"github.com/piwall/piwall/modules"
)

var (
	tools     = []string{"ansible", "piwall", "floor"}
	scenarios = []string{"fresh", "changed", "no change"}
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func BenchmarkVersusAnsible(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for the lab: sudo go test ./examples/bench -run '^$' -bench VersusAnsible -benchtime 1x -timeout 90m")
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		b.Skip("ansible is not installed: apt-get install -y ansible")
	}
	if err := exec.Command("ansible-doc", "community.general.iptables_state").Run(); err != nil {
		b.Skip("ansible lacks community.general.iptables_state (Debian's ansible package has it)")
	}
	if err := lab.Check(); err != nil {
		b.Skipf("no lab: %v (%s)", err, strings.Join(modules.Hints(err), "; "))
	}
	pis, runs := envInt("BENCH_PIS", 20), envInt("BENCH_RUNS", 3)
	tmp := b.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	exe := filepath.Join(tmp, "piwall")
	if out, err := exec.Command("go", "build", "-o", exe, filepath.Join(root, "cmd/piwall")).CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	py := pythonTar(b, tmp)
	// Labs are one per machine; take turns with the tests as lab.Start does.
	f, err := os.OpenFile("/run/lock/piwall-lab.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		b.Fatal(err)
	}
	times, failures := map[string][]time.Duration{}, map[string]int{}
	for r := 1; r <= runs; r++ {
		for _, tool := range tools {
			if only := os.Getenv("BENCH_TOOLS"); only != "" && !strings.Contains(only, tool) {
				continue
			}
			run(b, r, tool, pis, exe, py, filepath.Join(tmp, fmt.Sprintf("%s-%d", tool, r)), times, failures)
		}
	}
	b.StopTimer()
	var out strings.Builder
	fmt.Fprintf(&out, "\n%d lab Pis, %d cores, median of %d runs (wall time, seconds)\n\n", pis, runtime.NumCPU(), runs)
	fmt.Fprintf(&out, "| scenario | piwall | Ansible | floor | Ansible/piwall | piwall/floor |\n|---|---|---|---|---|---|\n")
	for _, s := range scenarios {
		p, a, fl := median(times["piwall/"+s]), median(times["ansible/"+s]), median(times["floor/"+s])
		cell := func(tool string, d time.Duration) string {
			if n := failures[tool+"/"+s]; n > 0 {
				return fmt.Sprintf("%s (%d of %d runs failed)", secs(d), n, runs)
			}
			return secs(d)
		}
		fmt.Fprintf(&out, "| %s | %s | %s | %s | %s | %s |\n", s, cell("piwall", p), cell("ansible", a), cell("floor", fl), ratio(a, p), ratio(p, fl))
	}
	fmt.Print(out.String())
	b.Log(out.String())
}

// secs and ratio print a cell, or "-" for a tool that was not run.
func secs(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f×", a.Seconds()/b.Seconds())
}

// failureLines is what a failed tool said of its failures (Ansible's
// "fatal:" and "FAILED" lines and its recap), else the last n lines.
func failureLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var said []string
	for _, l := range lines {
		if strings.Contains(l, "fatal:") || strings.Contains(l, "FAILED") || strings.Contains(l, "failed=1") || strings.HasPrefix(l, "ERROR") {
			said = append(said, l)
		}
	}
	if len(said) == 0 {
		said = lines[max(0, len(lines)-n):]
	}
	return strings.Join(said[:min(len(said), n)], "\n")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// run brings up a fresh lab and times one tool on it: fresh, changed, no change.
func run(b *testing.B, r int, tool string, pis int, exe, py, dir string, times map[string][]time.Duration, failures map[string]int) {
	ctx := context.Background()
	labDir := filepath.Join(dir, "lab")
	l, err := lab.Up(ctx, lab.Config{Pis: pis, Dir: labDir})
	if err != nil {
		b.Fatalf("lab up: %v", err)
	}
	defer func() {
		if err := lab.Down(context.Background(), labDir); err != nil {
			b.Errorf("lab down: %v", err)
		}
	}()
	site1, err := os.ReadFile(l.Plan())
	if err != nil {
		b.Fatal(err)
	}
	// The floor and Ansible load the rendered rulesets, the names'
	// addresses in them: piwall does the same (no address sets, no
	// refresher), so that the three do one job.
	site1 = bytes.Replace(site1, []byte("defaults {\n"), []byte("defaults {\n  dns_refresh   = \"0\"\n"), 1)
	if !bytes.Contains(site1, []byte("dns_refresh")) {
		b.Fatal("site.hcl: no defaults block to set dns_refresh in")
	}
	// The changed allowlist: the kiosk may also reach its dashboard and API on tcp/8443.
	site2 := bytes.Replace(site1, []byte(`ports = ["tcp/443"]`), []byte(`ports = ["tcp/443", "tcp/8443"]`), 1)
	if bytes.Equal(site1, site2) {
		b.Fatal("site.hcl: no outbound tcp/443 to change")
	}
	plans := []string{filepath.Join(dir, "site1.hcl"), filepath.Join(dir, "site2.hcl")}
	for i, src := range [][]byte{site1, site2} {
		if err := os.WriteFile(plans[i], src, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var names []string
	for _, p := range l.Pis {
		names = append(names, p.Name)
	}
	rules := []string{filepath.Join(dir, "rules1"), filepath.Join(dir, "rules2")}
	for i := range plans {
		render(b, exe, plans[i], rules[i], names)
	}
	if tool == "ansible" {
		for _, p := range l.Pis {
			cmd := exec.Command("ssh", "-F", l.SSHConfig(), p.Name, "sudo -n tar -x -C /")
			cmd.Stdin, _ = os.Open(py)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("python3 onto %s: %v\n%s", p.Name, err, out)
			}
		}
		writeAnsible(b, dir, l, names)
	}
	for i, s := range scenarios {
		plan, rs := plans[1], rules[1]
		if i == 0 {
			plan, rs = plans[0], rules[0]
		}
		var cmd *exec.Cmd
		switch tool {
		case "piwall":
			cmd = exec.Command(exe, "apply", plan, "--yes", "--parallel", strconv.Itoa(pis), "--canary", "0", "--no-color")
		case "ansible":
			cmd = exec.Command("ansible-playbook", "-i", filepath.Join(dir, "inventory.ini"), "-e", "rules_dir="+rs, "testdata/playbook.yml")
			cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"))
		case "floor":
			cmd = exec.Command("sh", append([]string{"testdata/floor.sh", l.SSHConfig(), rs}, names...)...)
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			// A tool that fails is reported in its cells, and its
			// later scenarios of this run are not timed: the Pis'
			// state is unknown.
			fmt.Printf("run %d  %-7s  %-9s  failed after %.1f s: %v\n%s\n", r, tool, s, d.Seconds(), err, failureLines(out, 20))
			for _, rest := range scenarios[i:] {
				failures[tool+"/"+rest]++
			}
			return
		}
		check(b, l, names, rs)
		times[tool+"/"+s] = append(times[tool+"/"+s], d)
		fmt.Printf("run %d  %-7s  %-9s  %6.1f s\n", r, tool, s, d.Seconds())
	}
}

// render writes HOST.v4 and HOST.v6 for each host: piwall's rulesets, names
// pinned to the lab's addresses as the Pis resolve them.
func render(b *testing.B, exe, plan, dir string, names []string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	args := []string{"render", plan, "--resolver", lab.DNS.V4.String(), "--resolver", lab.DNS.V6.String()}
	for _, s := range lab.Services {
		args = append(args, "--address", s.Name+"="+s.Addrs.V4.String()+","+s.Addrs.V6.String())
		if s.Name == "edge.cdn.lab" {
			args = append(args, "--address", "dashboard.lab="+s.Addrs.V4.String()+","+s.Addrs.V6.String())
		}
	}
	for _, n := range names {
		out, err := exec.Command(exe, append(args, "--host", n, "--no-color")...).Output()
		if err != nil {
			b.Fatalf("piwall render %s: %v", n, err)
		}
		// Two documents, each ending in COMMIT.
		i := bytes.Index(out, []byte("COMMIT\n"))
		if i < 0 {
			b.Fatalf("piwall render %s: no COMMIT in\n%s", n, out)
		}
		v4, v6 := out[:i+7], bytes.TrimLeft(out[i+7:], "\n")
		if err := os.WriteFile(filepath.Join(dir, n+".v4"), v4, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".v6"), v6, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// check proves each Pi ends with the rules of the plan live and persisted.
func check(b *testing.B, l *lab.Lab, names []string, rules string) {
	ctx := context.Background()
	for i, n := range names {
		want, err := os.ReadFile(filepath.Join(rules, n+".v4"))
		if err != nil {
			b.Fatal(err)
		}
		got, err := l.Run(ctx, l.Pis[i], "sudo -n iptables-save | sed -e '/^#/d' -e 's/ \\[[0-9]*:[0-9]*\\]$//'; echo ==; sudo -n cat /etc/iptables/rules.v4")
		if err != nil {
			b.Fatalf("%s: %v", n, err)
		}
		live, persisted, _ := strings.Cut(got, "==\n")
		if strip(live) != strip(string(want)) || strip(persisted) != strip(string(want)) {
			b.Fatalf("%s: live or persisted rules are not the plan's:\n%s\nwant\n%s", n, got, want)
		}
	}
}

func strip(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndex(line, " ["); i > 0 && strings.HasPrefix(line, ":") {
			line = line[:i]
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// writeAnsible writes the inventory and ansible.cfg, the configuration
// that succeeds on 20 lab Pis:
//   - ControlPersist off (ControlMaster=no): the connection that applies the
//     rules may freeze, and iptables_state's confirmation must come over a
//     new connection.
//   - ServerAliveInterval 2, ServerAliveCountMax 3, and 3 ssh retries:
//     iptables_state loads the rules while the connection that touched its
//     starter file is still closing, and that connection freezes for good
//     (its packets INVALID under the new DROP policies). Without keepalives
//     ansible-playbook waited on it for minutes, long after the module had
//     rolled back; with them the frozen connection is dropped after about
//     6 s and the command retried over a new one.
//   - timeout 60 s: the playbook's async (the time iptables_state waits for
//     its confirmation before it rolls back) is ansible_timeout, and at
//     10 s, with 20 forks on 2 cores, the confirmations came too late and
//     every Pi rolled back ("Timeout exceeded").
func writeAnsible(b *testing.B, dir string, l *lab.Lab, names []string) {
	inv := "[pis]\n" + strings.Join(names, "\n") + "\n"
	cfg := fmt.Sprintf(`[defaults]
forks = %d
host_key_checking = True
timeout = 60
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
retries = 3
ssh_args = -F %s -o ControlMaster=no -o ControlPersist=no -o ServerAliveInterval=2 -o ServerAliveCountMax=3
`, max(20, len(names)), l.SSHConfig())
	if err := os.WriteFile(filepath.Join(dir, "inventory.ini"), []byte(inv), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ansible.cfg"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
}

// pythonTar packs this machine's python3, python3-apt and what they need
// beyond a minimal bookworm into a tarball for the Pis.
func pythonTar(b *testing.B, dir string) string {
	pkgs := []string{"python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "python3-minimal", "python3", "python3.11", "python3-apt", "python3-apt-dbg", "libexpat1", "libffi8", "libmpdec3", "media-types"}
	var files []string
	for _, p := range pkgs {
		out, err := exec.Command("dpkg", "-L", p).Output()
		if err != nil {
			continue // not installed here
		}
		for _, f := range strings.Split(string(out), "\n") {
			if st, err := os.Lstat(f); err == nil && !st.IsDir() {
				files = append(files, strings.TrimPrefix(f, "/"))
			}
		}
	}
	list := filepath.Join(dir, "python.list")
	if err := os.WriteFile(list, []byte(strings.Join(files, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	tar := filepath.Join(dir, "python.tar")
	if out, err := exec.Command("tar", "-C", "/", "-cf", tar, "-T", list).CombinedOutput(); err != nil {
		b.Fatalf("tar: %v\n%s", err, out)
	}
	return tar
}
