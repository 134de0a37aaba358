package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piwall/piwall/runner/sim"
)

// screen collects what the terminal shows.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen shows want, and returns all it shows.
func (s *screen) waitFor(t *testing.T, want string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if out := s.String(); strings.Contains(out, want) {
			return out
		}
	}
	t.Fatalf("the terminal never showed %q; it shows:\n%q", want, s.String())
	return ""
}

// startSim starts n simulated hosts, their keys in the directory it
// returns, for the test's length.
func startSim(t *testing.T, n int) (*sim.Fleet, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := sim.Start(n, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, dir
}

// simSite writes a plan for the simulated hosts: allow is the port range
// of its outbound entry, so that two plans differ.
func simSite(t *testing.T, f *sim.Fleet, dir, allow string) string {
	t.Helper()
	var hosts strings.Builder
	for _, h := range f.Hosts {
		fmt.Fprintf(&hosts, "host %q {\n  address = \"127.0.0.1\"\n  port    = %d\n  groups  = [\"kiosk\"]\n}\n", h.Name, h.Addr.Port)
	}
	src := fmt.Sprintf(`defaults {
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
    to    = ["api.example.com"]
    ports = [%q]
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
  canary = 0
}
%s`, f.Key, f.KnownHosts, allow, hosts.String())
	path := filepath.Join(dir, strings.ReplaceAll(allow, "/", "-")+".hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// On a terminal, apply and rollback behave alike: the live progress of
// reading facts is done before the change sets are shown, nothing redraws
// over them or over the prompt while it waits, the prompt says what will
// happen, and the rollout's own progress follows the answer.
func TestTerminalPromptAndProgress(t *testing.T) {
	f, dir := startSim(t, 2)
	first, second := simSite(t, f, dir, "tcp/443"), simSite(t, f, dir, "tcp/8443")
	if code, out, errOut := runPiwall(t, "apply", first, "--yes"); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	tests := []struct {
		name, prompt, phase string
		args                []string
	}{
		{"apply", "Apply these changes to 2 hosts? Only 'yes' goes on: ", "applying: ", []string{"apply", second}},
		{"rollback", "Roll back 2 hosts? Only 'yes' goes on: ", "rolling back: ", []string{"rollback", "sim-0001", "sim-0002", "--plan", second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ptm, tty := openPTY(t)
			var scr screen
			go func() {
				b := make([]byte, 4096)
				for {
					n, err := ptm.Read(b)
					scr.mu.Lock()
					scr.buf.Write(b[:n])
					scr.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			code := make(chan int, 1)
			go func() { code <- run(context.Background(), tt.args, tty, tty, tty) }()
			shown := scr.waitFor(t, tt.prompt)
			plan := strings.Index(shown, "sim-0001 (127.0.0.1:")
			facts := strings.LastIndex(shown, "reading facts: 2/2 hosts done, 0 in flight")
			if facts < 0 || plan < facts {
				t.Fatalf("the change sets are not shown after the final progress of reading facts:\n%q", shown)
			}
			time.Sleep(300 * time.Millisecond) // three redraws of a progress left running
			waiting := scr.String()
			if after := waiting[plan:]; strings.Contains(after, "\x1b[") {
				t.Errorf("something redraws over the change sets or the prompt:\n%q", after)
			}
			if !strings.HasSuffix(waiting, tt.prompt) {
				t.Errorf("the prompt is not the last thing shown while it waits:\n%q", waiting)
			}
			if _, err := ptm.Write([]byte("yes\n")); err != nil {
				t.Fatal(err)
			}
			done := scr.waitFor(t, "Done: ")
			if c := <-code; c != 0 {
				t.Fatalf("exit %d:\n%s", c, done)
			}
			if rest := done[len(waiting):]; !strings.Contains(rest, tt.phase) || !strings.Contains(rest, "Done: 2 applied") {
				t.Errorf("after the answer: want the %q progress and two hosts applied:\n%q", tt.phase, rest)
			}
		})
	}
}
