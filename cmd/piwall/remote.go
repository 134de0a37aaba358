package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sync"

	"golang.org/x/term"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/runner/ssh"
)

// remoteFlags are the flags of the commands that reach hosts.
type remoteFlags struct {
	planFlags
	limit     string
	parallel  int
	acceptNew bool
	raw       bool
	stats     bool
	json      bool
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	r.planFlags.register(fs)
	fs.StringVar(&r.limit, "limit", "", "only the hosts that match `PATTERN`: labels or groups, globs, ! to exclude (pi-0*,!pi-03)")
	fs.IntVar(&r.parallel, "parallel", 0, "`N` hosts in flight at once (default: the plan's rollout.parallel)")
	fs.BoolVar(&r.acceptNew, "accept-new-host-keys", false, "record the host keys of hosts known_hosts does not know yet (changed keys are refused always)")
	fs.BoolVar(&r.raw, "raw", false, "show changes as iptables lines instead of words")
	fs.BoolVar(&r.json, "json", false, "print JSON on stdout instead of text (see README.md)")
	fs.BoolVar(&r.stats, "stats", false, "count, per host, the SSH connections, remote commands and uploads (on stderr)")
}

// inventoryEnv is the operator's machine as inventory sees it.
func inventoryEnv() (inventory.Env, error) {
	env := inventory.Env{}
	home, err := os.UserHomeDir()
	if err != nil {
		return env, fmt.Errorf("finding the home directory: %w", err)
	}
	env.Home = home
	if u, err := user.Current(); err == nil {
		env.LocalUser = u.Username
	}
	b, err := os.ReadFile(filepath.Join(home, ".ssh", "config"))
	switch {
	case err == nil:
		if env.SSHConfig, err = inventory.ParseSSHConfig(string(b)); err != nil {
			return env, fmt.Errorf("~/.ssh/config: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return env, err
	}
	return env, nil
}

// operator names who makes a change, for the host's lock and history.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// newDialer makes the SSH dialer of a run.
func newDialer(r *remoteFlags, std stdio) *ssh.Dialer {
	d := &ssh.Dialer{AcceptNewHostKeys: r.acceptNew}
	if r.stats {
		d.Stats = &ssh.Stats{}
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil && term.IsTerminal(int(tty.Fd())) {
		var mu sync.Mutex
		d.Passphrase = func(file string) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(tty, "Passphrase for %s: ", file)
			pass, err := term.ReadPassword(int(tty.Fd()))
			fmt.Fprintln(tty)
			return pass, err
		}
	}
	return d
}

// forEach runs work for n hosts, at most parallel at once, and waits.
func forEach(ctx context.Context, n, parallel int, work func(ctx context.Context, i int)) {
	if parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			work(ctx, i)
		}()
	}
	wg.Wait()
}

// printStats writes the round trips of each host, for --stats.
func printStats(d *ssh.Dialer, w io.Writer, labels []string) {
	if d.Stats == nil {
		return
	}
	for _, l := range labels {
		h := d.Stats.Host(l)
		fmt.Fprintf(w, "stats: %s: %d connections, %d commands, %d uploads\n", l, h.Connections.Load(), h.Commands.Load(), h.Uploads.Load())
	}
}

func labels(targets []inventory.Target) []string {
	var out []string
	for _, t := range targets {
		out = append(out, t.Label)
	}
	return out
}
