package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

func runApply(ctx context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var rf remoteFlags
	rf.register(fs)
	yes := fs.Bool("yes", false, "apply without asking (needed without a terminal)")
	force := fs.Bool("force", false, "apply even rulesets that fail the lockout check; the dead-man reverts them if they lock you out")
	var ro rolloutFlags
	ro.register(fs)
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path, err := planPath(positional)
	if err != nil {
		return err
	}
	saved, err := readPlanFile(path)
	if err != nil {
		return err
	}
	if saved != nil {
		path = saved.PlanPath
	}
	p, targets, err := loadTargets(path, &rf, std)
	if err != nil {
		return err
	}
	if saved != nil && saved.PlanDigest != p.Digest() {
		return modules.WithHint(fmt.Errorf("the plan files at %s changed since the plan was saved", path), "run piwall plan --out again")
	}
	want := planWant(p)
	if saved != nil {
		want.ChangeSet = func(t inventory.Target, f *modules.Facts) (*modules.ChangeSet, error) {
			cs, err := saved.changeSet(t.Label, f)
			if cs != nil {
				cs.Source = p.Digest()
			}
			return cs, err
		}
	}
	ch := change{want: want, yes: *yes, verb: "apply", question: "Apply these changes to", phase: "applying",
		opt: runner.ApplyOptions{Force: *force, Operator: operator(), Kind: "apply"}}
	return ch.run(ctx, newRemote(p, targets, &rf, &ro), &rf, std)
}

// rolloutFlags override the plan's rollout block.
type rolloutFlags struct {
	canary, batch, maxFailures int
}

func (r *rolloutFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&r.canary, "canary", -1, "`N` hosts done first, alone; a failure among them stops the rollout (default: the plan's rollout.canary)")
	fs.IntVar(&r.batch, "batch", -1, "`N` hosts per batch after the canary, 0 for all the rest (default: the plan's rollout.batch)")
	fs.IntVar(&r.maxFailures, "max-failures", -1, "`N` failed hosts tolerated before no more start (default: the plan's rollout.max_failures)")
}

// apply sets the flags given over the plan's settings.
func (r *rolloutFlags) apply(ro *runner.Rollout) {
	if r.canary >= 0 {
		ro.Canary = r.canary
	}
	if r.batch >= 0 {
		ro.Batch = r.batch
	}
	if r.maxFailures >= 0 {
		ro.MaxFailures = r.maxFailures
	}
}
