package modules

import (
	"crypto/sha256"
	"encoding/hex"
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
// start them, without a host: the checksums prepare verifies, the scripts'
// syntax as the Pis' /bin/sh (dash) reads it, and that every value that
// reaches them is quoted.
//
//	go test ./modules -run 'Change|Command|Generation'

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
		PlanDigest:  "9e61f2c08ab4d357",
		Kind:        "apply",
		ExpectV4:    emptyDigest, ExpectV6: emptyDigest,
		LockTTL: 10 * time.Minute,
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
	want := []string{"SHA256SUMS", "apply.sh", "confirm.sh", "meta.json", "new.v4", "new.v6", "prepare.sh", "revert.sh"}
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
	want := Generation{Operator: hostileOperator, Kind: "apply", Plan: "9e61f2c08ab4d357", Run: "8f3a61c2d9e04b7a", Outcome: "applied"}
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

func TestChangeScriptsSyntax(t *testing.T) {
	for _, tool := range []string{"checkbashisms", "shellcheck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("note: %s is not installed; the scripts are checked with sh -n only", tool)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*Change)
	}{
		{"apply", func(*Change) {}},
		{"rollback without install or expected digests", func(c *Change) {
			c.Kind, c.Install, c.ExpectV4, c.ExpectV6, c.PlanDigest = "rollback", false, "", "", "rollback to 3"
		}},
		{"hostile operator", func(c *Change) { c.Operator = hostileOperator }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testChange(t)
			tc.change(c)
			files := c.Files()
			for _, s := range scripts {
				t.Run(s, func(t *testing.T) {
					shSyntax(t, string(files[s]))
					lint(t, s, files[s])
				})
			}
		})
	}
}

// lint runs checkbashisms and shellcheck on a script where they are
// installed, and only reports what they say: the scripts are checked by
// the real dash above and on the lab's Pis.
func lint(t *testing.T, name string, script []byte) {
	t.Helper()
	for _, tool := range [][]string{{"checkbashisms", "-"}, {"shellcheck", "-s", "sh", "-"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			continue
		}
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin = strings.NewReader(string(script))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("note: %s on %s: %v\n%s", tool[0], name, err, out)
		}
	}
}

// TestChangeScriptsQuoteValues gives a change an operator made to break
// out of its quotes: the scripts must hold it only as one quoted word.
func TestChangeScriptsQuoteValues(t *testing.T) {
	c := testChange(t)
	c.Operator = hostileOperator
	files := c.Files()
	q := Quote(hostileOperator)
	if q != `'it'\''s; rm -rf / $(id)'` {
		t.Fatalf("Quote(%q) = %s", hostileOperator, q)
	}
	found := false
	for _, s := range scripts {
		script := string(files[s])
		found = found || strings.Contains(script, q)
		rest := strings.ReplaceAll(script, q, "QUOTED")
		for _, part := range []string{"it's", "rm -rf / $(id)", "$(id)"} {
			if strings.Contains(rest, part) {
				t.Errorf("%s holds %q outside Quote's word %s:\n%s", s, part, q, script)
			}
		}
	}
	if !found {
		t.Errorf("no script holds the operator quoted as %s: the lock would not name who holds it", q)
	}

	// /bin/sh reads the operator back as it was: run prepare's take_lock
	// line, as prepare runs it, with a lock file in a temporary directory.
	prepare := string(files["prepare.sh"])
	i := strings.Index(prepare, "take_lock() {")
	if i < 0 {
		t.Fatal("prepare.sh has no take_lock")
	}
	takeLock := prepare[i : i+strings.Index(prepare[i:], "\n")]
	dir := t.TempDir()
	script := "run=" + Quote(c.Run) + " now=1764061200 lockfile=" + Quote(filepath.Join(dir, "lock")) + "\n" + takeLock + "\ntake_lock\n"
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("take_lock: %v\n%s", err, out)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "run=8f3a61c2d9e04b7a\noperator=" + hostileOperator + "\nsince=1764061200\nexpires=1764061800\n"; string(lock) != want {
		t.Errorf("lock file:\n%s\nwant:\n%s", lock, want)
	}
}

// TestChangeScriptsValues checks that the change's settings reach the
// scripts where they act.
func TestChangeScriptsValues(t *testing.T) {
	c := testChange(t)
	files := c.Files()
	for _, tc := range []struct {
		script, want string
	}{
		{"prepare.sh", "run=8f3a61c2d9e04b7a rundir=/var/lib/piwall/runs/8f3a61c2d9e04b7a state=/var/lib/piwall"},
		{"prepare.sh", "--on-active=90s"},
		{"prepare.sh", "sleep 90;"},
		{"prepare.sh", "$((now + 600))"},
		{"prepare.sh", "if true || ! command -v iptables-restore"},
		{"prepare.sh", "cp /tmp/piwall-8f3a61c2d9e04b7a/* \"$rundir/\""},
		{"prepare.sh", "[ -n " + emptyDigest + " ] && [ \"$1\" != " + emptyDigest + " ]"},
		{"apply.sh", "sleep 0.10\n"},
		{"prepare.sh", "exit " + strconv.Itoa(ExitLocked)},
		{"prepare.sh", "exit " + strconv.Itoa(ExitDrift)},
		{"prepare.sh", "exit " + strconv.Itoa(ExitTestFailed)},
		{"confirm.sh", "exit " + strconv.Itoa(ExitApplyFailed)},
		{"confirm.sh", "exit " + strconv.Itoa(ExitNotNew)},
		{"confirm.sh", "exit " + strconv.Itoa(ExitNotApplied)},
		{"revert.sh", "iptables-restore <saved.v4"},
		{"apply.sh", "iptables-restore <new.v4"},
	} {
		t.Run(tc.script+": "+tc.want, func(t *testing.T) {
			if !strings.Contains(string(files[tc.script]), tc.want) {
				t.Errorf("%s does not hold %q:\n%s", tc.script, tc.want, files[tc.script])
			}
		})
	}
	exits := map[int]bool{}
	for _, code := range []int{ExitLocked, ExitDrift, ExitTestFailed, ExitApplyFailed, ExitNotNew, ExitNotApplied} {
		if code <= 2 || exits[code] {
			t.Errorf("exit status %d is taken (by sh's own 1 and 2, or another)", code)
		}
		exits[code] = true
	}

	// Without install and expected digests, those steps stand aside.
	c.Install, c.ExpectV4 = false, ""
	prepare := string(c.Files()["prepare.sh"])
	for _, want := range []string{"if false || ! command -v iptables-restore", "[ -n '' ] && [ \"$1\" != '' ]"} {
		if !strings.Contains(prepare, want) {
			t.Errorf("prepare.sh does not hold %q", want)
		}
	}
}

func TestCommands(t *testing.T) {
	c := testChange(t)
	const ifRoot = `uid=; while read -r k v _; do if [ "$k" = Uid: ]; then uid=$v; break; fi; done </proc/self/status; if [ "$uid" = 0 ]; then `
	tests := []struct {
		name, got, want string
	}{
		{"prepare with sudo", c.PrepareCommand(true),
			ifRoot + `sh /tmp/piwall-8f3a61c2d9e04b7a/prepare.sh; else sudo -n sh /tmp/piwall-8f3a61c2d9e04b7a/prepare.sh; fi`},
		{"prepare as root", c.PrepareCommand(false), `sh /tmp/piwall-8f3a61c2d9e04b7a/prepare.sh`},
		{"confirm with sudo", c.ConfirmCommand(true),
			ifRoot + `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh; else sudo -n sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh; fi`},
		{"confirm as root", c.ConfirmCommand(false), `sh /var/lib/piwall/runs/8f3a61c2d9e04b7a/confirm.sh`},
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
		{name: "applied", data: genApply4, want: Generation{Number: 4, Time: date("2026-11-25T08:40:12Z"), Operator: "alice@laptop", Kind: "apply", Plan: "9e61f2c08ab4d357", Run: "a07e5b19c4d26f38", Outcome: "applied"}},
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
