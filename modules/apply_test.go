package modules

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The apply tests check the files a change uploads and the commands that
// start them, without a host: the checksums prepare verifies, the header
// that gives the scripts their values, quoted. What the scripts do is
// tested by running them (scripts_test.go).
//
//	go test ./modules -run 'Change|Command|Generation|Header|Paths'

// hostileOperator is an operator name that, unquoted, would run commands.
const hostileOperator = "it's; rm -rf / $(id)"

// testChange is an apply of pi-01's rules from testdata/site.hcl.
func testChange(t *testing.T) *Change {
	t.Helper()
	d := desiredPi01(t)
	return &Change{
		Run:   "8f3a61c2d9e04b7a",
		NewV4: d.V4.Text(), NewV6: d.V6.Text(),
		RevertAfter: 90 * time.Second,
		Install:     true,
		Operator:    "alice@laptop",
		Source:      "9e61f2c08ab4d357",
		Kind:        "apply",
		ExpectV4:    emptyDigest, ExpectV6: emptyDigest,
	}
}

var scripts = []string{"prepare.sh", "apply.sh", "confirm.sh", "revert.sh"}

func TestChangeFiles(t *testing.T) {
	c := testChange(t)
	files := c.Files()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"SHA256SUMS", "apply.sh", "confirm.sh", "foreign.re", "meta.json", "names", "new.v4", "new.v6", "prepare.sh", "refresh.sh", "revert.sh", "sets"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("Files() = %q, want %q", names, want)
	}
	if got := string(files["new.v4"]); got != c.NewV4 {
		t.Errorf("new.v4 = %q, want NewV4 %q", got, c.NewV4)
	}
	if got := string(files["new.v6"]); got != c.NewV6 {
		t.Errorf("new.v6 = %q, want NewV6 %q", got, c.NewV6)
	}
	for _, s := range scripts {
		if len(files[s]) == 0 {
			t.Errorf("%s is empty", s)
		}
	}

	// SHA256SUMS: one line per other file, in name order, in the format
	// sha256sum -c reads ("HEX  NAME").
	var sums []string
	for _, line := range strings.Split(strings.TrimSuffix(string(files["SHA256SUMS"]), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Errorf("SHA256SUMS line %q is not \"HEX  NAME\"", line)
			continue
		}
		content, exists := files[name]
		if !exists || name == "SHA256SUMS" {
			t.Errorf("SHA256SUMS names %q, which is not a file of the change", name)
			continue
		}
		h := sha256.Sum256(content)
		if want := hex.EncodeToString(h[:]); sum != want {
			t.Errorf("SHA256SUMS says %s for %s, want %s", sum, name, want)
		}
		sums = append(sums, name)
	}
	if got, want := strings.Join(sums, " "), strings.Join(want[1:], " "); got != want {
		t.Errorf("SHA256SUMS covers %q, want %q in this order", got, want)
	}

	// prepare checks them with sha256sum --quiet -c: so does this test,
	// where the tool is there.
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Log("sha256sum is not installed: not checked with the real tool")
		return
	}
	dir := t.TempDir()
	for n, content := range files {
		if err := os.WriteFile(filepath.Join(dir, n), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sha256sum", "--quiet", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --quiet -c SHA256SUMS: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "new.v4"), []byte(c.NewV4+"-A INPUT -j ACCEPT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("sha256sum -c accepts a changed new.v4: %s", out)
	}
}

func TestChangeMeta(t *testing.T) {
	c := testChange(t)
	c.Operator = hostileOperator
	g, err := ParseGeneration(c.Files()["meta.json"])
	if err != nil {
		t.Fatalf("meta.json: %v", err)
	}
	want := Generation{Operator: hostileOperator, Kind: "apply", Source: "9e61f2c08ab4d357", Run: "8f3a61c2d9e04b7a", Outcome: "applied"}
	if !sameGeneration(g, want) {
		t.Errorf("meta.json = %+v, want %+v", g, want)
	}
	// confirm numbers and dates it with sed, which must find both fields
	// as encoding/json writes them.
	meta := string(c.Files()["meta.json"])
	if !strings.HasPrefix(meta, `{"number":0,"time":"0001-01-01T00:00:00Z",`) || !strings.HasSuffix(meta, "}\n") {
		t.Errorf("meta.json = %s, want it to start with number 0 and the zero time, and end with a newline", meta)
	}
}

// TestScriptHeader holds the scripts to their header: it is assignments
// only, each value one quoted word that /bin/sh reads back as the value
// the change holds, and the scripts' bodies name no path of their own.
func TestScriptHeader(t *testing.T) {
	c := testChange(t)
	c.Operator = hostileOperator
	h := assignments(c.header())
	var names []string
	for _, line := range strings.Split(strings.TrimSuffix(h, "\n"), "\n") {
		name, word, ok := strings.Cut(line, "=")
		if !ok || name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			t.Errorf("header line %q is not an assignment", line)
			continue
		}
		if _, ok := shellWord(word); !ok {
			t.Errorf("header line %q: %s is not one quoted word", line, word)
		}
		names = append(names, name)
	}
	// Read every variable back with the real sh.
	var script strings.Builder
	script.WriteString(h)
	for _, n := range names {
		script.WriteString(`printf '%s\0' "$` + n + `"` + "\n")
	}
	out, err := exec.Command("/bin/sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("sh with the header: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	want := map[string]string{
		"operator": hostileOperator, "run": c.Run, "rundir": "/var/lib/piwall/runs/8f3a61c2d9e04b7a",
		"upload": "/tmp/piwall-8f3a61c2d9e04b7a", "state": "/var/lib/piwall", "rules_v4": "/etc/iptables/rules.v4",
		"rules_v6_new": "/etc/iptables/.rules.v6.piwall-8f3a61c2d9e04b7a", "systemd_dir": "/run/systemd/system", "lockfile": "/var/lib/piwall/lock",
		"install": "true", "revert_after": "90", "lock_ttl": "1590", "apt_limit": "360", "apply_delay": "0.10",
		"boot_id": "/proc/sys/kernel/random/boot_id", "uptime": "/proc/uptime", "expect_v4": emptyDigest,
		"exit_locked": strconv.Itoa(ExitLocked), "exit_not_applied": strconv.Itoa(ExitNotApplied),
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if len(got) != len(names) {
		t.Fatalf("sh printed %d values for %d variables: %q", len(got), len(names), got)
	}
	for i, n := range names {
		if w, ok := want[n]; ok && got[i] != w {
			t.Errorf("$%s = %q, want %q", n, got[i], w)
		}
		delete(want, n)
	}
	for n := range want {
		t.Errorf("the header does not assign %s", n)
	}

	// Every script of a run is the header, common.sh and its body.
	files := c.Files()
	for _, s := range scripts {
		if want := h + scriptFile("common.sh") + scriptFile(s); string(files[s]) != want {
			t.Errorf("%s is not the header, common.sh and scripts/%s", s, s)
		}
	}
	// The paths are the header's: a body that named one would miss a
	// test's temporary directory, and a host's too once they move.
	for _, name := range append(scripts, "common.sh", "facts.sh") {
		body := scriptFile(name)
		for _, p := range []string{"/var/lib/piwall", "/etc/iptables", "/tmp", "/run/systemd", "/usr/sbin", "rules.v", "/etc/resolv.conf"} {
			if strings.Contains(body, p) {
				t.Errorf("scripts/%s names %s: use the header's variable", name, p)
			}
		}
	}
}

func TestPaths(t *testing.T) {
	p := Paths{StateDir: "/x/state", UploadRoot: "/x/up"}
	c := &Change{Run: "ab12", Paths: p}
	if got, want := c.RunDir(), "/x/state/runs/ab12"; got != want {
		t.Errorf("RunDir = %s, want %s", got, want)
	}
	if got, want := c.UploadDir(), "/x/up/piwall-ab12"; got != want {
		t.Errorf("UploadDir = %s, want %s", got, want)
	}
	if got, want := p.rules("v6"), "/etc/iptables/rules.v6"; got != want {
		t.Errorf("rules(v6) with RulesDir unset = %s, want %s", got, want)
	}
	if got := (Paths{}).resolved(); got != defaultPaths {
		t.Errorf("Paths{} resolves to %+v, want %+v", got, defaultPaths)
	}
}

func TestCommands(t *testing.T) {
	c := testChange(t)
	const unpack = `umask 077; mkdir /tmp/piwall-8f3a61c2d9e04b7a && tar -xf - -C /tmp/piwall-8f3a61c2d9e04b7a || exit 10; `
	const ifRoot = `uid=; while read -r k v _; do if [ "$k" = Uid: ]; then uid=$v; break; fi; done </proc/self/status; if [ "$uid" = 0 ]; then `
	tests := []struct {
		name, got, want string
	}{
		{"prepare with sudo", c.PrepareCommand(true),
			unpack + ifRoot + `sh /tmp/piwall-8f3a61c2d9e04b7a/prepare.sh; else sudo -n sh /tmp/piwall-8f3a61c2d9e04b7a/prepare.sh; fi`},
		{"prepare as root", c.PrepareCommand(false), unpack + `sh /tmp/piwall-8f3a61c2d9e04b7a/prepare.sh`},
		{"confirm with sudo", c.ConfirmCommand(true, 150*time.Millisecond),
			ifRoot + `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh rtt=15; else sudo -n sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh rtt=15; fi`},
		{"confirm as root, the round trip rounded up", c.ConfirmCommand(false, 141*time.Millisecond), `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh rtt=15`},
		{"confirm, no round trip measured", c.ConfirmCommand(false, 0), `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh rtt=0`},
		{"status with sudo", c.StatusCommand(true),
			ifRoot + `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh status; else sudo -n sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh status; fi`},
		{"status as root", c.StatusCommand(false), `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh status`},
		{"facts with sudo", FactsCommand(true),
			ifRoot + `sh -s -- "$SSH_CONNECTION"; else sudo -n sh -s -- "$SSH_CONNECTION"; fi`},
		{"facts as root", FactsCommand(false), `sh -s -- "$SSH_CONNECTION"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got  %s\nwant %s", tc.got, tc.want)
			}
			shSyntax(t, tc.got)
		})
	}
	if c.RunDir() != "/var/lib/piwall/runs/8f3a61c2d9e04b7a" || c.UploadDir() != "/tmp/piwall-8f3a61c2d9e04b7a" {
		t.Errorf("RunDir, UploadDir = %s, %s", c.RunDir(), c.UploadDir())
	}
}

// TestPrivileged runs the sudo wrapper for real: as root it must run the
// command itself, never through sudo (which a Pi's root may lack); as any
// other user, through sudo -n.
func TestPrivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to run the wrapper as root and as nobody")
	}
	out, err := exec.Command("/bin/sh", "-c", privileged(true, "echo ran as $(id -u)")).CombinedOutput()
	if err != nil || string(out) != "ran as 0\n" {
		t.Errorf("privileged(true, ...) as root: %q, %v; want \"ran as 0\"", out, err)
	}
	// Any other user goes through sudo: here a stand-in that says so.
	dir, err := os.MkdirTemp("", "piwall-sudo-") // t.TempDir's parent is closed to nobody
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sudo"), []byte("#!/bin/sh\necho sudo \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", privileged(true, "echo ran"))
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	out, err = cmd.CombinedOutput()
	if err != nil || string(out) != "sudo -n echo ran\n" {
		t.Errorf("privileged(true, ...) as nobody: %q, %v; want \"sudo -n echo ran\"", out, err)
	}
}

func TestParseGeneration(t *testing.T) {
	tests := []struct {
		name, data string
		want       Generation
		err        string
	}{
		{name: "applied", data: genApply4, want: Generation{Number: 4, Time: date("2026-11-25T08:40:12Z"), Operator: "alice@laptop", Kind: "apply", Source: "9e61f2c08ab4d357", Run: "a07e5b19c4d26f38", Outcome: "applied"}},
		{name: "found", data: genFound1, want: Generation{Number: 1, Time: date("2026-11-20T09:14:02Z"), Kind: "found", Run: "3c9d0a51e7b2f486", Outcome: "replaced"}},
		{name: "unknown fields ignored", data: `{"number":2,"outcome":"reverted","future":true}`, want: Generation{Number: 2, Outcome: "reverted"}},
		{name: "meta.json before confirm numbers it", data: `{"number":0,"outcome":"applied"}`, want: Generation{Outcome: "applied"}},
		{name: "empty", data: "", err: "generation metadata: unexpected end of JSON input"},
		{name: "cut", data: `{"number":4,"time":"2026-`, err: "generation metadata: unexpected end of JSON input"},
		{name: "not an object", data: `[4]`, err: "generation metadata: json: cannot unmarshal"},
		{name: "null", data: `null`, err: `generation metadata: number 0, outcome ""`},
		{name: "no outcome", data: `{"number":4,"kind":"apply"}`, err: `generation metadata: number 4, outcome ""`},
		{name: "negative number", data: `{"number":-1,"outcome":"applied"}`, err: `generation metadata: number -1, outcome "applied"`},
		{name: "number as a string", data: `{"number":"4","outcome":"applied"}`, err: "generation metadata: json: cannot unmarshal"},
		{name: "fractional number", data: `{"number":4.5,"outcome":"applied"}`, err: "generation metadata: json: cannot unmarshal"},
		{name: "bad time", data: `{"number":4,"time":"2026-11-25 08:40","outcome":"applied"}`, err: "generation metadata: parsing time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGeneration([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("ParseGeneration(%s) = %+v, %v; want error %q", tc.data, g, err, tc.err)
				}
				if g != (Generation{}) {
					t.Errorf("ParseGeneration(%s) returned %+v with its error, want the zero Generation", tc.data, g)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseGeneration(%s): %v", tc.data, err)
			}
			if !sameGeneration(g, tc.want) {
				t.Errorf("ParseGeneration(%s)\ngot  %+v\nwant %+v", tc.data, g, tc.want)
			}
		})
	}
}

// TestRevertAfterRoundsUp: the dead-man's delay on the host is whole
// seconds, never shorter than the runner counts with.
func TestRevertAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]int{10 * time.Second: 10, 10500 * time.Millisecond: 11, 10001 * time.Millisecond: 11} {
		if got := (&Change{RevertAfter: d}).header().RevertAfter; got != want {
			t.Errorf("revert_after for %v = %d, want %d", d, got, want)
		}
	}
}

// TestArchive: the archive holds the run's files, each as it is, readable
// by its owner alone, in name order.
func TestArchive(t *testing.T) {
	c := testChange(t)
	files := c.Files()
	tr := tar.NewReader(bytes.NewReader(c.Archive()))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Mode != 0o600 || hdr.Typeflag != tar.TypeReg {
			t.Errorf("%s: mode %o, type %c; want a regular file, 0600", hdr.Name, hdr.Mode, hdr.Typeflag)
		}
		if !bytes.Equal(data, files[hdr.Name]) {
			t.Errorf("%s: the archive holds %q, want %q", hdr.Name, data, files[hdr.Name])
		}
		names = append(names, hdr.Name)
	}
	if len(names) != len(files) || !sort.StringsAreSorted(names) {
		t.Errorf("the archive holds %v, want the %d files in name order", names, len(files))
	}
}
