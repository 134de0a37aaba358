package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

// applyArgs are apply's arguments, parsed.
type applyArgs struct {
	remoteFlags
	rollout     rolloutFlags
	path        string
	yes         bool
	force       bool
	untilReboot bool
}

func parseApply(c *command, args []string, std stdio) (*applyArgs, error) {
	a := &applyArgs{}
	fs := newFlagSet(c, std)
	a.remoteFlags.register(fs)
	fs.BoolVar(&a.yes, "yes", false, "apply without asking (needed without a terminal)")
	fs.BoolVar(&a.force, "force", false, "apply even rulesets that fail the lockout check; the dead-man reverts them if they lock you out")
	fs.BoolVar(&a.untilReboot, "until-reboot", false, "apply even to hosts whose rules cannot outlast a reboot (an overlay or tmpfs root); the outcome says so")
	a.rollout.register(fs)
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if a.path, err = planPath(positional); err != nil {
		return nil, err
	}
	return a, nil
}

func runApply(ctx context.Context, c *command, args []string, std stdio) error {
	a, err := parseApply(c, args, std)
	if err != nil {
		return err
	}
	rf, path := &a.remoteFlags, a.path
	// A saved plan (plan --out) names the plan it came from and holds each
	// host's rulesets as they were planned.
	var saved *modules.SavedPlan
	if !modules.IsPlanSource(path) {
		if saved, err = modules.ReadSavedPlan(path); err != nil {
			return err
		}
		path = saved.PlanPath
	}
	p, targets, err := loadTargets(path, rf, std)
	if err != nil {
		return err
	}
	want := planWant(p)
	if saved != nil {
		if saved.PlanDigest != p.Digest() {
			return modules.WithHint(fmt.Errorf("the plan files at %s changed since the plan was saved", path), "run piwall plan --out again")
		}
		want.ChangeSet = func(t inventory.Target, f *modules.Facts) (*modules.ChangeSet, error) {
			return saved.ChangeSet(t.Label, f)
		}
	}
	ch := change{want: want, yes: a.yes, verb: "apply", question: "Apply these changes to", phase: "applying",
		opt: runner.ApplyOptions{Force: a.force, UntilReboot: a.untilReboot, Operator: operator(), Kind: "apply"}}
	return ch.run(ctx, newRemote(p, targets, rf, &a.rollout), rf, std)
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
