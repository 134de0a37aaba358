package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piwall/piwall/modules/firewall"
)

// writePlan writes a plan file into a new directory and returns its path.
func writePlan(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const examplePins = "--address=dashboard.example.com=203.0.113.10,2001:db8::10 --address=api.example.com=203.0.113.11 " +
	"--address=0.debian.pool.ntp.org=192.0.2.123 --address=1.debian.pool.ntp.org=192.0.2.124 --resolver=192.168.1.1"

func TestValidate(t *testing.T) {
	code, stdout, stderr := runPiwall(t, "validate", "../../examples/site.hcl")
	if code != 0 || stdout != "The plan is valid: 2 hosts, 1 allowlist, 0 warnings.\n" || stderr != "" {
		t.Errorf("validate examples/site.hcl: got %d, %q, %q", code, stdout, stderr)
	}

	bad := writePlan(t, `allowlist "a" {
  inbound {
    from  = ["10.0.0.1/24"]
    ports = ["tcp/22", "tcp/70000"]
  }
}
host "pi" { allowlists = ["b"] }
`)
	code, stdout, stderr = runPiwall(t, "validate", bad, "--no-color")
	if code != 1 || stdout != "" {
		t.Errorf("validate of a bad plan: got exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	for _, want := range []string{"Error: Invalid CIDR", "site.hcl line 3", "the network is 10.0.0.0/24", "Error: Invalid port", "tcp/70000", "Error: Unknown allowlist", `did you mean "a"?`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate of a bad plan: stderr lacks %q:\n%s", want, stderr)
		}
	}

	code, _, stderr = runPiwall(t, "validate", writePlan(t, `variable "x" {}
allowlist "a" {
  inbound {
    from  = [var.x]
    ports = ["tcp/22", "udp/123"]
  }
  outbound {
    to    = ["192.0.2.1"]
    ports = ["udp/123"]
  }
}
host "pi" { allowlists = ["a"] }
`), "--var", "x=192.0.2.0/24")
	if code != 0 || stderr != "" {
		t.Errorf("validate with --var: got exit %d, stderr %q", code, stderr)
	}
}

func TestRender(t *testing.T) {
	args := append([]string{"render", "../../examples/site.hcl", "--host", "kiosk-01"}, strings.Fields(examplePins)...)
	code, stdout, stderr := runPiwall(t, args...)
	if code != 0 {
		t.Fatalf("render: exit %d: %s", code, stderr)
	}
	docs := strings.SplitAfter(stdout, "COMMIT\n")
	if len(docs) != 3 || !strings.HasPrefix(docs[2], "# piwall render: host kiosk-01, address sets (") {
		t.Fatalf("render: want an IPv4 and an IPv6 document, then the address sets, got:\n%s", stdout)
	}
	// The sets the rules match, as ipset restore reads them, holding the
	// addresses the names have now.
	set := firewall.SetName("dashboard.example.com", firewall.IPv4)
	for _, want := range []string{"create " + set + " hash:ip family inet ", "add " + set + " 203.0.113.10\n"} {
		if !strings.Contains(docs[2], want) {
			t.Errorf("render: the address sets lack %q:\n%s", want, docs[2])
		}
	}
	if !strings.HasPrefix(docs[0], "# piwall render: host kiosk-01, IPv4\n") || !strings.HasPrefix(docs[1], "# piwall render: host kiosk-01, IPv6\n") {
		t.Errorf("render: documents out of order:\n%s", stdout)
	}
	if !strings.Contains(docs[0], "# dashboard.example.com → 203.0.113.10, 2001:db8::10\n") {
		t.Errorf("render: the names and their addresses are not shown:\n%s", docs[0])
	}
	v4, err := firewall.Parse(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v4.Text(), `-A OUTPUT -p tcp -m set --match-set `+set+` dst -m tcp --dport 443 -m comment --comment "piwall: kiosk outbound 1: dashboard.example.com" -j ACCEPT`) {
		t.Errorf("render: no rule for the dashboard:\n%s", v4.Text())
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no host", []string{"render", "../../examples/site.hcl"}, "which host?\nhint: --host NAME"},
		{"unknown host", []string{"render", "../../examples/site.hcl", "--host", "kiosk-09"}, `the plan has no host "kiosk-09"; it has kiosk-01, kiosk-02`},
		{"names not resolved offline", []string{"render", "../../examples/site.hcl", "--host", "kiosk-01"}, "host kiosk-01: dashboard.example.com, api.example.com, 0.debian.pool.ntp.org, 1.debian.pool.ntp.org not resolved: names are resolved on the host when piwall plans, and render does not reach it\nhint: resolve them with this machine's resolver with --resolve=local"},
		{"system resolvers unknown", append([]string{"render", "../../examples/site.hcl", "--host", "kiosk-01"}, strings.Fields(strings.TrimSuffix(examplePins, "--resolver=192.168.1.1"))...), `dns = "system"`},
		{"bad pin", []string{"render", "../../examples/site.hcl", "--host", "kiosk-01", "--address", "x=not-an-ip"}, `"not-an-ip" is not an address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runPiwall(t, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("got exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestFmt(t *testing.T) {
	path := writePlan(t, "host \"pi\" {\n  address = \"192.0.2.1\"\n  allowlists=[\"a\"]\n}\n")
	code, stdout, stderr := runPiwall(t, "fmt", "--check", path)
	if code != 1 || stdout != path+"\n" || !strings.Contains(stderr, "1 file not formatted") {
		t.Errorf("fmt --check on an unformatted file: got %d, %q, %q", code, stdout, stderr)
	}
	if code, stdout, _ := runPiwall(t, "fmt", path); code != 0 || stdout != path+"\n" {
		t.Errorf("fmt: got %d, %q", code, stdout)
	}
	got, _ := os.ReadFile(path)
	if want := "host \"pi\" {\n  address    = \"192.0.2.1\"\n  allowlists = [\"a\"]\n}\n"; string(got) != want {
		t.Errorf("fmt wrote %q, want %q", got, want)
	}
	if code, stdout, _ := runPiwall(t, "fmt", "--check", filepath.Dir(path)); code != 0 || stdout != "" {
		t.Errorf("fmt --check after fmt: got %d, %q", code, stdout)
	}
	if code, _, stderr := runPiwall(t, "fmt", writePlan(t, "host \"pi\" {\n")); code != 1 || !strings.Contains(stderr, "Error: Unclosed configuration block") {
		t.Errorf("fmt of a file with a syntax error: got %d, %q", code, stderr)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			code, stdout, stderr := runPiwall(t, "completion", shell)
			if code != 0 || !strings.Contains(stdout, "rollback") || !strings.Contains(stdout, "accept-new-host-keys") {
				t.Fatalf("completion %s: exit %d, %q\n%s", shell, code, stderr, stdout)
			}
			if shell == "bash" {
				cmd := exec.Command("bash", "-n")
				cmd.Stdin = strings.NewReader(stdout)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("bash -n: %v: %s", err, out)
				}
			}
		})
	}
	if code, _, stderr := runPiwall(t, "completion", "tcsh"); code != 1 || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("completion tcsh: %d %q", code, stderr)
	}
}
