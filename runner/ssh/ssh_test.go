package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
	"github.com/piwall/piwall/runner/sim"
)

// simTarget starts one simulated host and returns a target for it, with
// its own copy of the known_hosts file.
func simTarget(t *testing.T) (inventory.Target, *sim.Fleet) {
	t.Helper()
	dir := t.TempDir()
	f, err := sim.Start(1, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	h := f.Hosts[0]
	return inventory.Target{
		Label: h.Name, Address: "127.0.0.1", Port: h.Addr.Port, User: "root",
		IdentityFiles: []string{f.Key}, KnownHosts: []string{f.KnownHosts},
	}, f
}

func TestDialRun(t *testing.T) {
	target, _ := simTarget(t)
	stats := &runner.Stats{}
	d := &Dialer{Stats: stats}
	ctx := context.Background()
	c, err := d.Dial(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Run(ctx, "no such command", nil)
	if err != nil || res.Status != 127 || !strings.Contains(string(res.Stderr), "unknown command") {
		t.Errorf("Run: got %+v, %v; want exit 127 and the host's complaint", res, err)
	}
	// Input goes right behind the exec request: the host reads all of it.
	script := modules.FactsScript("==>piwall-test", modules.FactsRequest{})
	res, err = c.Run(ctx, modules.FactsCommand(false), []byte(script))
	if err != nil || res.Status != 0 {
		t.Fatalf("facts: %+v, %v", res, err)
	}
	if _, err := modules.ParseFacts(string(res.Stdout), "==>piwall-test"); err != nil {
		t.Errorf("the facts the host read from its input: %v", err)
	}
	if c.RTT() <= 0 {
		t.Errorf("RTT after two commands = %v, want the time a channel took to open", c.RTT())
	}
	h := stats.Host(target.Label)
	if h.Connections.Load() != 1 || h.Commands.Load() != 2 {
		t.Errorf("stats: %d connections, %d commands; want 1 and 2", h.Connections.Load(), h.Commands.Load())
	}
}

// TestExitStatus: a session's exit status, or the signal that killed its
// command as a shell numbers it, or none.
func TestExitStatus(t *testing.T) {
	status := func(s uint32) *gossh.Request {
		return &gossh.Request{Type: "exit-status", Payload: gossh.Marshal(struct{ Status uint32 }{s})}
	}
	signal := func(name string) *gossh.Request {
		return &gossh.Request{Type: "exit-signal", Payload: gossh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{name, false, "", ""})}
	}
	for _, tc := range []struct {
		name string
		reqs []*gossh.Request
		want int
	}{
		{"status", []*gossh.Request{status(3)}, 3},
		{"zero", []*gossh.Request{{Type: "keepalive@openssh.com"}, status(0)}, 0},
		{"killed", []*gossh.Request{signal("TERM")}, 143},
		{"killed by another", []*gossh.Request{signal("USR1")}, 128},
		{"neither", nil, -1},
		{"malformed", []*gossh.Request{{Type: "exit-status", Payload: []byte{1}}}, -1},
	} {
		reqs := make(chan *gossh.Request, len(tc.reqs))
		for _, r := range tc.reqs {
			reqs <- r
		}
		close(reqs)
		if got := exitStatus(reqs); got != tc.want {
			t.Errorf("%s: exit status %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestHostKeys(t *testing.T) {
	ctx := context.Background()

	t.Run("unknown key refused without the flag, with how to verify it", func(t *testing.T) {
		target, f := simTarget(t)
		target.KnownHosts = []string{filepath.Join(t.TempDir(), "known_hosts")}
		_, err := (&Dialer{}).Dial(ctx, target)
		var hk *HostKeyError
		if !errors.As(err, &hk) || hk.Changed {
			t.Fatalf("got %v, want an unknown host key error", err)
		}
		fp := gossh.FingerprintSHA256(hostKeyOf(t, f))
		if !strings.Contains(err.Error(), "is unknown: it offers ssh-ed25519 key "+fp) {
			t.Errorf("error %q lacks the key's type and fingerprint %s", err, fp)
		}
		hints := modules.Hints(err)
		want := []string{
			fmt.Sprintf("verify %s out of band before trusting it: from a network you trust, ssh-keyscan -p %d -t ed25519 127.0.0.1 | ssh-keygen -lf -", fp, target.Port),
			"or on the Pi's console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
			"if the fingerprints match, run again with --accept-new-host-keys to record it",
		}
		if strings.Join(hints, "\n") != strings.Join(want, "\n") {
			t.Errorf("hints:\n%s\nwant (the flag last):\n%s", strings.Join(hints, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("accepted key recorded hashed with HashKnownHosts", func(t *testing.T) {
		target, _ := simTarget(t)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		target.KnownHosts, target.HashKnownHosts = []string{kh}, true
		c, err := (&Dialer{AcceptNewHostKeys: true}).Dial(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		b, _ := os.ReadFile(kh)
		if !strings.HasPrefix(string(b), "|1|") || strings.Contains(string(b), "127.0.0.1") || strings.Count(string(b), "\n") != 1 {
			t.Fatalf("known_hosts after accepting: %q, want one hashed line", b)
		}
		c, err = (&Dialer{}).Dial(ctx, target)
		if err != nil {
			t.Fatalf("the hashed key is not known: %v", err)
		}
		c.Close()
	})

	t.Run("host key checking turned off is refused without the flag", func(t *testing.T) {
		target, _ := simTarget(t)
		for _, tc := range []struct {
			name string
			set  func(*inventory.Target)
			why  string
		}{
			{"UserKnownHostsFile /dev/null", func(t *inventory.Target) { t.KnownHosts = []string{"/dev/null"} }, "UserKnownHostsFile /dev/null"},
			{"StrictHostKeyChecking no", func(t *inventory.Target) { t.StrictHostKeyChecking = "no" }, "StrictHostKeyChecking no"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				target := target
				tc.set(&target)
				_, err := (&Dialer{AcceptNewHostKeys: true}).Dial(ctx, target)
				if err == nil || !strings.Contains(err.Error(), "turns host key checking off ("+tc.why+")") ||
					!strings.Contains(strings.Join(modules.Hints(err), " "), "--insecure-ignore-host-keys") {
					t.Fatalf("got %v, want a refusal naming %s and the flag", err, tc.why)
				}
				target.KnownHosts = append(target.KnownHosts[:0:0], "/dev/null")
				c, err := (&Dialer{InsecureIgnoreHostKeys: true}).Dial(ctx, target)
				if err != nil {
					t.Fatalf("with --insecure-ignore-host-keys: %v", err)
				}
				c.Close()
			})
		}
		// The flag does not turn checking off for the others.
		target.KnownHosts = []string{filepath.Join(t.TempDir(), "known_hosts")}
		var hk *HostKeyError
		if _, err := (&Dialer{InsecureIgnoreHostKeys: true}).Dial(ctx, target); !errors.As(err, &hk) {
			t.Errorf("an unknown key with --insecure-ignore-host-keys elsewhere: got %v, want it refused", err)
		}
	})

	t.Run("unknown key recorded with the flag, then known", func(t *testing.T) {
		target, _ := simTarget(t)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		target.KnownHosts = []string{kh}
		c, err := (&Dialer{AcceptNewHostKeys: true}).Dial(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		b, _ := os.ReadFile(kh)
		if !strings.Contains(string(b), "ssh-ed25519") {
			t.Fatalf("known_hosts after accepting: %q", b)
		}
		c, err = (&Dialer{}).Dial(ctx, target)
		if err != nil {
			t.Fatalf("the recorded key is not known: %v", err)
		}
		c.Close()
	})

	t.Run("changed key refused loudly, even with the flag", func(t *testing.T) {
		target, f := simTarget(t)
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		other, _ := gossh.NewPublicKey(pub)
		b, _ := os.ReadFile(f.KnownHosts)
		fields := strings.Fields(string(b))
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte(fields[0]+" "+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(other)))+"\n"), 0o644)
		target.KnownHosts = []string{kh}
		_, err := (&Dialer{AcceptNewHostKeys: true}).Dial(ctx, target)
		var hk *HostKeyError
		if !errors.As(err, &hk) || !hk.Changed || !strings.Contains(err.Error(), "HAS CHANGED") || !strings.Contains(strings.Join(modules.Hints(err), " "), "ssh-keygen -R") {
			t.Fatalf("got %v, want a changed host key error", err)
		}
	})
}

func TestKeys(t *testing.T) {
	ctx := context.Background()

	t.Run("a passphrase without a terminal", func(t *testing.T) {
		target, _ := simTarget(t)
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		block, err := gossh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(t.TempDir(), "id_ed25519")
		os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
		target.IdentityFiles = []string{key}
		_, err = (&Dialer{}).Dial(ctx, target)
		if err == nil || !strings.Contains(err.Error(), "has a passphrase and there is no terminal") {
			t.Errorf("got %v, want the passphrase error", err)
		}
		asked := 0
		d := &Dialer{Passphrase: func(string) ([]byte, error) { asked++; return []byte("secret"), nil }}
		// The key decrypts but the host does not know it: authentication fails.
		if _, err := d.Dial(ctx, target); err == nil || asked != 1 || !strings.Contains(err.Error(), "authenticating as root") {
			t.Errorf("with a passphrase: got %v after %d prompts; want one prompt and an authentication error", err, asked)
		}
	})

	t.Run("no key at all", func(t *testing.T) {
		target, _ := simTarget(t)
		target.IdentityFiles, target.UseAgent = []string{filepath.Join(t.TempDir(), "none")}, true
		t.Setenv("SSH_AUTH_SOCK", "")
		if _, err := (&Dialer{}).Dial(ctx, target); err == nil || !strings.Contains(err.Error(), "no key to log in") {
			t.Errorf("got %v, want no key", err)
		}
	})
}

func TestOutputLimit(t *testing.T) {
	target, _ := simTarget(t)
	ctx := context.Background()
	c, err := (&Dialer{}).Dial(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Run(ctx, "yes", nil)
	var over *OutputLimitError
	if !errors.As(err, &over) || over.Stream != "stdout" || over.Limit != MaxStdout {
		t.Fatalf("Run(yes): %v, want an OutputLimitError on stdout", err)
	}
	if len(res.Stdout) > MaxStdout || len(res.Stdout) < MaxStdout/2 {
		t.Errorf("kept %d bytes of stdout, want at most %d and most of it", len(res.Stdout), MaxStdout)
	}
	if h := modules.Hints(err); len(h) != 1 || !strings.Contains(h[0], fmt.Sprintf("ssh root@127.0.0.1 -p %d sudo -n true", target.Port)) {
		t.Errorf("hints: %q", h)
	}
	if want := "printed more than 16 MiB on its stdout"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
}

// TestTurns: a round trip is counted each time the host's bytes arrive
// after the controller sent something since the last ones; requests sent
// together count once, and bytes the host sends on its own count none.
func TestTurns(t *testing.T) {
	local, remote := net.Pipe()
	defer local.Close()
	defer remote.Close()
	var n atomic.Int64
	c := &turns{Conn: local, count: &n}
	go func() {
		buf := make([]byte, 64)
		for _, reply := range []string{"a", "b", "unasked"} {
			if reply != "unasked" {
				remote.Read(buf)
			}
			remote.Write([]byte(reply))
		}
	}()
	buf := make([]byte, 64)
	c.Write([]byte("1"))
	c.Read(buf)
	c.Write([]byte("2"))
	c.Read(buf)
	c.Read(buf) // unasked
	if got := n.Load(); got != 2 {
		t.Errorf("round trips = %d, want 2", got)
	}
}
