package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The ssh_config tests hold ParseSSHConfig and Resolve to ssh_config(5).
// TestSSHConfigAgainstOpenSSH (sshconfig_openssh_test.go) asks the ssh
// client itself (ssh -G, which prints the configuration it would use
// without connecting) about every case of testdata/sshconfig, so that the
// expectations are OpenSSH's and not ours.
//
//	go test ./inventory -run SSHConfig
//	go test ./inventory -run '^$' -fuzz FuzzParseSSHConfig -fuzztime 60s

func TestSSHConfigNil(t *testing.T) {
	var cfg *SSHConfig
	h, err := cfg.Resolve("pi-01", Env{Home: "/home/op", LocalUser: "op"}, SSHOverrides{})
	if err != nil || h.HostName != "pi-01" || h.User != "op" || h.Port != 22 {
		t.Errorf("nil config: Resolve = %+v, %v; want OpenSSH's defaults", h, err)
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		s, p string
		want bool
	}{
		{"pi-01", "pi-01", true},
		{"pi-01", "pi-*", true},
		{"pi-01", "pi-01*", true},
		{"pi-01", "*", true},
		{"", "*", true},
		{"pi-01", "pi-0?", true},
		{"pi-010", "pi-0?", false},
		{"pi-01", "PI-01", false},
		{"pi-[1]", "pi-[1]", true}, // [ is itself, not a class
		{"pi-1", "pi-[1]", false},
		{"a.b.lan", "*.lan", true},
		{"a", "**a", true},
		{"ab", "*?", true},
		{"", "?", false},
	} {
		if got := matchPattern(tc.s, tc.p); got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.s, tc.p, got, tc.want)
		}
	}
}

func TestExpandTokens(t *testing.T) {
	vals := map[byte]string{'h': "pi-01.lan", 'r': "pi", 'p': "22", 'n': "pi-01"}
	for _, tc := range []struct {
		s, allowed, want, err string
	}{
		{"~/.ssh/%h", "%hr", "~/.ssh/pi-01.lan", ""},
		{"%r@%h:%p", "%hrp", "pi@pi-01.lan:22", ""},
		{"100%%", "%h", "100%", ""},
		{"%%h", "%h", "%h", ""},
		{"%d", "%h", "", "unknown token %d"},
		{"a%", "%h", "", "lone %"},
	} {
		got, err := expandTokens(tc.s, tc.allowed, vals)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expandTokens(%q) = %q, %v; want an error saying %q", tc.s, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expandTokens(%q) = %q, %v; want %q", tc.s, got, err, tc.want)
		}
	}
}

func TestParseJumpHop(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want JumpHop
		err  bool
	}{
		{"bastion", JumpHop{Host: "bastion"}, false},
		{"admin@bastion:2222", JumpHop{"admin", "bastion", 2222}, false},
		{"ssh://admin@bastion:2222", JumpHop{"admin", "bastion", 2222}, false},
		{"ssh://bastion/", JumpHop{Host: "bastion"}, false},
		{"[fd00::1]:22", JumpHop{Host: "fd00::1", Port: 22}, false},
		{"a@b@bastion", JumpHop{"a@b", "bastion", 0}, false},
		{"@bastion", JumpHop{}, true},
		{"bastion:0", JumpHop{}, true},
		{"ssh://bastion/path", JumpHop{}, true},
		{"", JumpHop{}, true},
	} {
		got, err := ParseJumpHop(tc.s)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseJumpHop(%q) = %+v, %v; want %+v (error: %v)", tc.s, got, err, tc.want, tc.err)
		}
	}
}

// errorCases are configs ParseSSHConfig refuses, as ssh does: the line
// number must be in the error. TestSSHConfigAgainstOpenSSH checks that
// ssh refuses each of them too.
var errorCases = []struct {
	name, config string
	line         string // "file:N" that the error must name
	msg          string // and a part of what it says
}{
	{"keyword without value", "Host pi-01\n  HostName pi.lan\n  User\n", "ssh_config:3", "no value"},
	{"keyword with only a comment", "Host pi-01\n  User # nobody\n", "ssh_config:2", "no value"},
	{"host without pattern", "User pi\nHost\n  User admin\n", "ssh_config:2", "no value"},
	{"unterminated double quote", "Host pi-01\n  IdentityFile \"/home/op/my keys\n", "ssh_config:2", "unterminated quote"},
	{"unterminated single quote", "# fleet\n\nHost 'pi-01\n", "ssh_config:3", "unterminated quote"},
	{"unterminated quote in a section that does not match", "Host other\n  User ok\nHost nothing\n  User \"x\n", "ssh_config:4", "unterminated quote"},
	{"unterminated quote in a skipped match block", "Match host x\n  User \"x\n", "ssh_config:2", "unterminated quote"},
	{"empty quoted value", "Host pi-01\n  User \"\"\n", "ssh_config:2", "empty value"},
	{"two values for a single-valued keyword", "Host pi-01\n  User admin pi\n", "ssh_config:2", "one value"},
}

func TestParseSSHConfigErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseSSHConfig(tc.config)
			if err == nil {
				t.Fatalf("ParseSSHConfig(%q) = %v, nil; want an error naming %s", tc.config, cfg, tc.line)
			}
			if !strings.Contains(err.Error(), tc.line+":") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseSSHConfig(%q): got error %q, want one naming %q and saying %q", tc.config, err, tc.line, tc.msg)
			}
		})
	}
}

func mustParseSSHConfig(t testing.TB, text string) *SSHConfig {
	t.Helper()
	cfg, err := ParseSSHConfig(text)
	if err != nil {
		t.Fatalf("ParseSSHConfig(%q): %v", text, err)
	}
	return cfg
}

// FuzzParseSSHConfig feeds ParseSSHConfig arbitrary files: it must not
// panic, and what it accepts must resolve any alias to a host with a
// port, a user, keys and a lowercase name, or to an error.
func FuzzParseSSHConfig(f *testing.F) {
	requireSeeds(f, "FuzzParseSSHConfig", 8)
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := ParseSSHConfig(text)
		if err != nil {
			if cfg != nil {
				t.Errorf("ParseSSHConfig returned %v with error %v", cfg, err)
			}
			return
		}
		env := Env{SSHConfig: cfg, Home: "/home/op", LocalUser: "op", LocalHost: "laptop.lan", UID: "1000",
			Getenv: func(string) (string, bool) { return "x", true }}
		for _, alias := range []string{"pi-01", "PI-01", "", "*", "!pi", "[fd00::1]", "10.0.0.11", "a%hb"} {
			h, err := cfg.Resolve(alias, env, SSHOverrides{})
			if err != nil {
				continue
			}
			if h.Port < 1 || h.Port > 65535 || h.User == "" || len(h.IdentityFiles) == 0 {
				t.Errorf("Resolve(%q) = %+v: no port, user or identity file", alias, h)
			}
			if h.HostName != canonicalHost(h.HostName) {
				t.Errorf("Resolve(%q): host name %q is not lowercase", alias, h.HostName)
			}
			_, _ = env.target(alias, SSHOverrides{})
		}
	})
}

// requireSeeds fails the fuzz test when its seed corpus under testdata/
// has fewer than min files: a fuzz test pointed at a directory that moved
// must not pass by fuzzing nothing.
func requireSeeds(f *testing.F, name string, min int) {
	f.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	if len(entries) < min {
		f.Fatalf("seed corpus testdata/fuzz/%s has %d files, want at least %d", name, len(entries), min)
	}
}

// TestLoadSSHConfigSystemAfterUser reads the system's file after the
// user's, as ssh does without -F: Debian's /etc/ssh/ssh_config says
// HashKnownHosts yes, and the user's file wins where it says otherwise.
func TestLoadSSHConfigSystemAfterUser(t *testing.T) {
	dir := t.TempDir()
	system := filepath.Join(dir, "ssh_config")
	os.WriteFile(system, []byte("Include /nonexistent/ssh_config.d/*.conf\nHost *\n    SendEnv LANG LC_*\n    HashKnownHosts yes\n    GSSAPIAuthentication yes\n    User system\n"), 0o644)
	user := filepath.Join(dir, "config")
	os.WriteFile(user, []byte("Host pi-02\n  HashKnownHosts no\nHost *\n  User pi\n"), 0o600)
	for _, tc := range []struct {
		name, user, alias, wantUser string
		wantHash                    bool
	}{
		{"the system's setting where the user's says nothing", user, "pi-01", "pi", true},
		{"the user's setting first", user, "pi-02", "pi", false},
		{"no user file", filepath.Join(dir, "none"), "pi-01", "system", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadSSHConfig(tc.user, system, dir)
			if err != nil {
				t.Fatal(err)
			}
			h, err := cfg.Resolve(tc.alias, Env{Home: dir, LocalUser: "op"}, SSHOverrides{})
			if err != nil || h.HashKnownHosts != tc.wantHash || h.User != tc.wantUser {
				t.Errorf("Resolve(%s) = %+v, %v; want HashKnownHosts %v, user %s", tc.alias, h, err, tc.wantHash, tc.wantUser)
			}
		})
	}
}

// TestLoadSSHConfigPermissions refuses, as ssh does, an included file
// others may write: it could name any ProxyCommand.
func TestLoadSSHConfigPermissions(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	config := filepath.Join(home, ".ssh", "config")
	os.WriteFile(config, []byte("Include shared\n"), 0o600)
	shared := filepath.Join(home, ".ssh", "shared")
	os.WriteFile(shared, []byte("ProxyCommand evil\n"), 0o600)
	os.Chmod(shared, 0o666)
	if _, err := LoadSSHConfig(config, "", home); err == nil || !strings.Contains(err.Error(), "config:1: Include: "+shared+": bad permissions") {
		t.Errorf("got %v, want the world-writable include refused", err)
	}
}

// TestLoadSSHConfigOwner refuses, as ssh does, an included file that
// neither the user nor root owns. Giving a file away needs root.
func TestLoadSSHConfigOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("skipped: giving a file to another user needs root")
	}
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	config := filepath.Join(home, ".ssh", "config")
	os.WriteFile(config, []byte("Include theirs\n"), 0o600)
	theirs := filepath.Join(home, ".ssh", "theirs")
	os.WriteFile(theirs, []byte("User them\n"), 0o600)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSSHConfig(config, "", home); err == nil || !strings.Contains(err.Error(), theirs+": bad owner") {
		t.Errorf("got %v, want the include someone else owns refused", err)
	}
}
