package inventory

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// TestSSHConfigAgainstOpenSSH holds piwall's reading of ssh_config to
// OpenSSH's own: for every case of testdata/sshconfig/*.txtar it writes
// the case's files into a fresh home directory, then, for each host alias
// the case names, compares Resolve with what ssh -G -F ~/.ssh/config
// prints (ssh -G evaluates the configuration and prints it; it never
// connects). A case is a txtar archive: its files are paths under the
// home directory, ~/.ssh/config the one ssh is given; its comment says
// what it covers and, on lines of their own,
//
//	check: ALIAS...            both must agree on every compared keyword; an
//	                           alias written ssh://USER@ALIAS:PORT gives the
//	                           user and port as ssh's command line does (and
//	                           as the plan's user and port are given)
//	fail: ALIAS TEXT           ssh refuses the alias; so must piwall, saying TEXT
//	refuse: ALIAS TEXT         ssh accepts it, piwall refuses it, saying TEXT
//	                           (a keyword that would change the connection and
//	                           that piwall does not implement, Match exec)
//
// It skips only where no ssh client is installed (CI has one).
//
//	go test ./inventory -run SSHConfigAgainstOpenSSH
func TestSSHConfigAgainstOpenSSH(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "sshconfig", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("testdata/sshconfig holds %d cases, want at least 10: has the corpus moved?", len(cases))
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("skipped: no ssh client to compare with (apt-get install openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("the current user: %v", err)
	}
	localHost, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range cases {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			home := t.TempDir()
			for _, f := range ar.Files {
				p := filepath.Join(home, f.Name)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f.Data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			config := filepath.Join(home, ".ssh", "config")
			vars := map[string]string{"HOME": home, "PIWALL_KEYS": "/srv/piwall keys"}
			cfg, loadErr := LoadSSHConfig(config, "", home)
			// ssh expands ~ from the password database (tilde_expand_filename)
			// and Include's ~ from $HOME (glob's GLOB_TILDE); piwall has one
			// home for both, which on an operator's machine is the same.
			env := Env{SSHConfig: cfg, Home: u.HomeDir, LocalUser: u.Username, LocalHost: localHost,
				UID: strconv.Itoa(os.Getuid()), Getenv: func(n string) (string, bool) { v, ok := vars[n]; return v, ok }}
			checks := 0
			for _, line := range strings.Split(string(ar.Comment), "\n") {
				verb, rest, ok := strings.Cut(line, ": ")
				if !ok || (verb != "check" && verb != "fail" && verb != "refuse") {
					continue
				}
				checks++
				if verb == "check" {
					if loadErr != nil {
						t.Fatalf("LoadSSHConfig: %v", loadErr)
					}
					for _, alias := range strings.Fields(rest) {
						compareWithSSH(t, config, home, alias, env)
					}
					continue
				}
				alias, want, _ := strings.Cut(rest, " ")
				theirs, sshErr := sshG(config, home, alias, vars)
				var err error = loadErr
				if err == nil {
					_, err = env.target(alias, SSHOverrides{})
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: piwall says %v, want an error saying %q", alias, err, want)
				}
				switch {
				case verb == "fail" && sshErr == nil:
					t.Errorf("%s: ssh -G accepts what piwall refuses: %v", alias, theirs)
				case verb == "refuse" && sshErr != nil:
					t.Errorf("%s: ssh -G refuses it too (%v): make it a fail: line", alias, sshErr)
				}
			}
			if checks == 0 {
				t.Fatal("the case's comment has no check:, fail: or refuse: line")
			}
		})
	}
}

// compareWithSSH compares piwall's resolution of alias with ssh -G's.
func compareWithSSH(t *testing.T, config, home, alias string, env Env) {
	t.Helper()
	theirs, err := sshG(config, home, alias, map[string]string{"HOME": home, "PIWALL_KEYS": "/srv/piwall keys"})
	if err != nil {
		t.Errorf("%s: ssh -G: %v", alias, err)
		return
	}
	host, over := alias, SSHOverrides{}
	if strings.HasPrefix(alias, "ssh://") {
		hop, err := ParseJumpHop(alias)
		if err != nil {
			t.Fatalf("%s: %v", alias, err)
		}
		host, over = hop.Host, SSHOverrides{User: hop.User, Port: hop.Port}
	}
	h, err := env.SSHConfig.Resolve(host, env, over)
	if err != nil {
		t.Errorf("%s: Resolve: %v (ssh -G accepts it)", alias, err)
		return
	}
	compareHost(t, alias, h, theirs)
	tg, err := env.target(host, over)
	if err != nil {
		t.Errorf("%s: target: %v", alias, err)
		return
	}
	// Each jump host is what ssh -G says of it, given the jump's user and
	// port (ssh dials it as ssh -l USER -p PORT HOST), the first with its
	// own ProxyJump (the later ones get -J, the hops before them).
	jump, err := expandTokens(tg.Jump, "%hnpr", h.tokens)
	if err != nil {
		t.Fatalf("%s: ProxyJump %s: %v", alias, tg.Jump, err)
	}
	for i, spec := range strings.Split(jump, ",") {
		if jump == "" {
			break
		}
		hop, err := ParseJumpHop(spec)
		if err != nil {
			t.Fatalf("%s: hop %q: %v", alias, spec, err)
		}
		// As ssh -J dials a hop: ssh -l USER -p PORT HOST.
		var opts []string
		if hop.User != "" {
			opts = append(opts, "-l", hop.User)
		}
		if hop.Port != 0 {
			opts = append(opts, "-p", strconv.Itoa(hop.Port))
		}
		dest := strings.Join(append(opts, hop.Host), " ")
		o := SSHOverrides{User: hop.User, Port: hop.Port}
		if i > 0 {
			o.ProxyJump = "none"
		}
		theirs, err := sshG(config, home, hop.Host, map[string]string{"HOME": home, "PIWALL_KEYS": "/srv/piwall keys"}, opts...)
		if err != nil {
			t.Errorf("%s: hop %s: ssh -G: %v", alias, dest, err)
			continue
		}
		if i > 0 {
			delete(theirs, "proxyjump")
			delete(theirs, "proxycommand")
		}
		hh, err := env.SSHConfig.Resolve(hop.Host, env, o)
		if err != nil {
			t.Errorf("%s: hop %s: Resolve: %v", alias, dest, err)
			continue
		}
		compareHost(t, alias+" hop "+dest, hh, theirs)
		if got := tg.Hops[i]; got.Address != hh.HostName || got.User != hh.User || got.Port != hh.Port {
			t.Errorf("%s: hop %d of the target is %s@%s:%d, want %s@%s:%d", alias, i, got.User, got.Address, got.Port, hh.User, hh.HostName, hh.Port)
		}
	}
}

// compareHost compares a resolution with what ssh -G printed.
func compareHost(t *testing.T, alias string, h *SSHHost, theirs map[string][]string) {
	t.Helper()
	ours := map[string]string{
		"hostname":                 h.HostName,
		"user":                     h.User,
		"port":                     strconv.Itoa(h.Port),
		"identityfile":             strings.Join(h.IdentityFiles, "\n"),
		"certificatefile":          strings.Join(h.CertificateFiles, "\n"),
		"proxyjump":                h.ProxyJump,
		"proxycommand":             h.ProxyCommand,
		"userknownhostsfile":       strings.Join(h.UserKnownHostsFiles, " "),
		"globalknownhostsfile":     strings.Join(h.GlobalKnownHostsFiles, " "),
		"hostkeyalias":             h.HostKeyAlias,
		"identitiesonly":           yesOrNo(h.IdentitiesOnly),
		"identityagent":            h.IdentityAgent,
		"hashknownhosts":           yesOrNo(h.HashKnownHosts),
		"stricthostkeychecking":    map[string]string{"yes": "true", "no": "false"}[h.StrictHostKeyChecking],
		"ciphers":                  strings.Join(h.Algorithms.Ciphers, ","),
		"macs":                     strings.Join(h.Algorithms.MACs, ","),
		"kexalgorithms":            strings.Join(h.Algorithms.KeyExchanges, ","),
		"hostkeyalgorithms":        strings.Join(h.Algorithms.HostKeys, ","),
		"pubkeyacceptedalgorithms": strings.Join(h.Algorithms.PublicKeyAuths, ","),
	}
	if ours["stricthostkeychecking"] == "" {
		ours["stricthostkeychecking"] = h.StrictHostKeyChecking
	}
	for _, key := range []string{"hostname", "user", "port", "identityfile", "certificatefile", "proxyjump", "proxycommand",
		"userknownhostsfile", "globalknownhostsfile", "hostkeyalias", "identitiesonly", "identityagent", "hashknownhosts", "stricthostkeychecking",
		"ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms"} {
		if (key == "proxyjump" || key == "proxycommand") && theirs[key] == nil && strings.Contains(alias, " hop ") {
			continue // a later hop: ssh -G was not given the -J that overrides them
		}
		want := strings.Join(theirs[key], "\n")
		if ours[key] != want {
			t.Errorf("%s: %s: piwall has %q, ssh -G says %q", alias, key, ours[key], want)
		}
	}
}

func yesOrNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// sshG runs ssh -G with only the given config file, in an environment of
// vars alone, and returns each keyword's values.
func sshG(config, home, alias string, vars map[string]string, opts ...string) (map[string][]string, error) {
	args := append(append([]string{"-G", "-F", config}, opts...), "--", alias)
	cmd := exec.Command("ssh", args...)
	cmd.Dir = home
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	values := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), " ")
		values[key] = append(values[key], value)
	}
	return values, nil
}
