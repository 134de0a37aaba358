package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
	"github.com/piwall/piwall/runner/ssh"
)

// remoteFlags are the flags of the commands that reach hosts.
type remoteFlags struct {
	planFlags
	limit     string
	parallel  int
	acceptNew bool
	insecure  bool
	raw       bool
	stats     bool
	json      bool
	facts     time.Duration
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	r.planFlags.register(fs)
	fs.StringVar(&r.limit, "limit", "", "only the hosts that match `PATTERN`: labels or groups, globs, ! to exclude (pi-0*,!pi-03)")
	fs.IntVar(&r.parallel, "parallel", 0, "`N` hosts in flight at once (default: the plan's rollout.parallel)")
	fs.BoolVar(&r.acceptNew, "accept-new-host-keys", false, "record the host keys of hosts known_hosts does not know yet (changed keys are refused always)")
	fs.BoolVar(&r.insecure, "insecure-ignore-host-keys", false, "accept any host key of the hosts whose ssh_config turns checking off (StrictHostKeyChecking no, UserKnownHostsFile /dev/null), which piwall otherwise refuses")
	fs.BoolVar(&r.raw, "raw", false, "show changes as iptables lines instead of words")
	fs.BoolVar(&r.json, "json", false, "print JSON on stdout instead of text (see README.md)")
	fs.BoolVar(&r.stats, "stats", false, "count, per host, the SSH connections, remote commands and uploads (on stderr)")
	fs.DurationVar(&r.facts, "facts-timeout", runner.DefaultFactsTimeout, "how long a host may take to answer the facts command before it fails alone")
}

// systemSSHConfig is the system's ssh_config, read after the user's; a
// variable so that tests can point it elsewhere.
var systemSSHConfig = "/etc/ssh/ssh_config"

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
	// As ssh: the user's file, then the system's; a missing one is none.
	if env.SSHConfig, err = inventory.LoadSSHConfig(filepath.Join(home, ".ssh", "config"), systemSSHConfig, home); err != nil {
		return env, fmt.Errorf("ssh_config: %w", err)
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
func newDialer(r *remoteFlags) *ssh.Dialer {
	d := &ssh.Dialer{AcceptNewHostKeys: r.acceptNew, InsecureIgnoreHostKeys: r.insecure}
	if r.stats {
		d.Stats = &runner.Stats{}
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

// faultHook is set only by the fault tests' helper binary (TestMain), to
// stop piwall at a point of an apply; nil in piwall itself.
var faultHook func(host string, p runner.FaultPoint)

// remote is what a command that reaches hosts sets up: the hosts, and the
// fleet engine that reaches them.
type remote struct {
	plan    *plans.Plan // nil for hosts given by address with no plan at hand
	targets []inventory.Target
	fleet   *runner.Fleet
	dialer  *ssh.Dialer
}

// newRemote makes the fleet engine for targets, with the plan's rollout
// settings (the defaults without a plan) under the flags.
func newRemote(p *plans.Plan, targets []inventory.Target, rf *remoteFlags, ro *rolloutFlags) *remote {
	d := newDialer(rf)
	rollout := plans.DefaultRollout
	if p != nil {
		rollout = p.Rollout
	}
	fl := &runner.Fleet{Dialer: d, Parallel: rollout.Parallel, Fault: faultHook, FactsTimeout: rf.facts, Stats: d.Stats,
		Rollout: runner.Rollout{Canary: rollout.Canary, Batch: rollout.Batch, MaxFailures: rollout.MaxFailures}}
	if rf.parallel > 0 {
		fl.Parallel = rf.parallel
	}
	if ro != nil {
		ro.apply(&fl.Rollout)
	}
	return &remote{plan: p, targets: targets, fleet: fl, dialer: d}
}

// printStats writes the round trips of each host, for --stats.
func (r *remote) printStats(w io.Writer) {
	if r.dialer.Stats == nil {
		return
	}
	for _, t := range r.targets {
		h := r.dialer.Stats.Host(t.Label)
		fmt.Fprintf(w, "stats: %s: %d connections, %d commands, %d uploads, %d round trips\n", t.Label, h.Connections.Load(), h.Commands.Load(), h.Uploads.Load(), h.RoundTrips.Load())
	}
}

// loadTargets loads the plan at path and the hosts --limit picks.
func loadTargets(path string, rf *remoteFlags, std stdio) (*plans.Plan, []inventory.Target, error) {
	p, err := loadPlan(path, &rf.planFlags, std)
	if err != nil {
		return nil, nil, err
	}
	env, err := inventoryEnv()
	if err != nil {
		return nil, nil, err
	}
	all, err := inventory.Targets(p, env)
	if err != nil {
		return nil, nil, err
	}
	targets, err := inventory.Select(all, rf.limit)
	if err != nil {
		return nil, nil, err
	}
	return p, targets, nil
}

// lookupHosts turns HOST arguments into targets: labels of the plan at
// planArg (or in the current directory, if it holds .hcl files), else
// [user@]address[:port]. The plan is nil when there is none. A plan of
// the current directory that does not load is said and passed over: an
// emergency rollback to an address must not depend on an unrelated file.
func lookupHosts(hosts []string, planArg string, rf *remoteFlags, std stdio) (*plans.Plan, []inventory.Target, error) {
	env, err := inventoryEnv()
	if err != nil {
		return nil, nil, err
	}
	implicit := false
	if planArg == "" {
		if files, _ := plans.PlanFiles("."); len(files) > 0 {
			planArg, implicit = ".", true
		}
	}
	var p *plans.Plan
	var fromPlan []inventory.Target
	var passedOver bool
	if planArg != "" {
		p, err = loadPlan(planArg, &rf.planFlags, std)
		switch {
		case err != nil && implicit:
			fmt.Fprintln(std.errOut, "piwall: the plan in this directory does not load; HOST arguments are taken as addresses")
			passedOver = true
		case err != nil:
			return nil, nil, err
		default:
			if fromPlan, err = inventory.Targets(p, env); err != nil {
				return nil, nil, err
			}
		}
	}
	targets, err := inventory.Lookup(hosts, fromPlan, env)
	if err != nil && passedOver {
		err = modules.WithHint(err, "the .hcl files here did not load (see above): fix them, or name the plan with --plan")
	}
	return p, targets, err
}
