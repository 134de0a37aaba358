package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/piwall/piwall/plans"
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
		return fmt.Errorf("the plan files at %s changed since the plan was saved (hint: run piwall plan --out again)", path)
	}
	d := newDialer(&rf, std)
	defer printStats(d, std.errOut, labels(targets))
	prog := newProgress(std.errOut, "reading facts", len(targets), rf.noColor)
	fp := gather(ctx, targets, d, parallelism(&rf, p), prog, true, saved)
	prog.stop()
	defer fp.close()
	summary, changed, _ := planSummary(fp.hosts)
	if !rf.json {
		printPlan(std.out, fp.hosts, rf.raw)
		fmt.Fprintln(std.out, summary)
	}
	if changed == 0 && rf.json {
		hosts, sum := jsonHosts(fp.hosts)
		if err := writeJSON(std.out, jsonDoc{Hosts: hosts, Summary: &sum}); err != nil {
			return err
		}
		if sum.Failed > 0 {
			return fmt.Errorf("%s failed", count(sum.Failed, "host"))
		}
		return nil
	}
	if changed == 0 {
		outs := make([]runner.Outcome, 0, len(fp.hosts))
		for _, h := range fp.hosts {
			if h.err != nil {
				outs = append(outs, runner.Outcome{Host: h.label, Status: runner.Failed, Err: h.err})
			}
		}
		if len(outs) > 0 {
			printOutcomes(std.out, outs)
			return fmt.Errorf("%s failed", count(len(outs), "host"))
		}
		fmt.Fprintln(std.out, "No changes: every host already has its rules.")
		return nil
	}
	if !*yes {
		if err := confirm(std, changed); err != nil {
			return err
		}
	}
	outs := make([]runner.Outcome, len(fp.hosts))
	// The rollout orders the hosts with changes; the others are done.
	var changing []int
	for i, h := range fp.hosts {
		switch {
		case h.err != nil:
			outs[i] = runner.Outcome{Host: h.label, Status: runner.Failed, Err: h.err}
		case h.cs.Unchanged():
			outs[i] = runner.Outcome{Host: h.label, Status: runner.Unchanged, Changes: h.cs}
		default:
			changing = append(changing, i)
		}
	}
	opt := runner.ApplyOptions{Force: *force, Operator: operator(), Plan: p.Digest(), Kind: "apply"}
	prog = newProgress(std.errOut, "applying", len(changing), rf.noColor)
	done := ro.rollout(p, parallelism(&rf, p)).Run(ctx, len(changing), func(ctx context.Context, k int) runner.Outcome {
		i := changing[k]
		conn := fp.conns[i]
		fp.conns[i] = nil // Apply closes it
		s := fp.sessions[i]
		s.Progress = runnerProgress(prog)
		defer prog.report(s.Target.Label, stepDone)
		return s.Apply(ctx, conn, fp.hosts[i].cs, opt)
	})
	prog.stop()
	for k, o := range done {
		i := changing[k]
		// Skipped hosts come back from the rollout without their change set.
		o.Host, o.Changes = fp.hosts[i].label, fp.hosts[i].cs
		outs[i] = o
	}
	return reportOutcomes(std, rf.json, fp.hosts, outs)
}

// reportOutcomes prints the outcomes of an apply or rollback, in words or
// as JSON, and turns failures into the command's error.
func reportOutcomes(std stdio, asJSON bool, hosts []hostPlan, outs []runner.Outcome) error {
	failed := 0
	if asJSON {
		jh, sum := jsonHosts(hosts)
		jo := jsonOutcomes(outs, &sum)
		sum.Failed = 0
		for _, o := range outs {
			if o.Status == runner.Failed {
				sum.Failed++
			}
		}
		if err := writeJSON(std.out, jsonDoc{Hosts: jh, Outcomes: jo, Summary: &sum}); err != nil {
			return err
		}
		failed = sum.Failed + sum.Reverted
	} else {
		failed = printOutcomes(std.out, outs)
	}
	if failed > 0 {
		return fmt.Errorf("%s failed or reverted", count(failed, "host"))
	}
	return nil
}

// confirm asks the operator on a terminal, and refuses without one.
func confirm(std stdio, changed int) error {
	f, ok := std.in.(*os.File)
	if !ok || !isTerminal(f) {
		return errors.New("refusing to apply without a terminal to confirm on (hint: --yes)")
	}
	fmt.Fprintf(std.errOut, "Apply these changes to %s? Only 'yes' goes on: ", count(changed, "host"))
	line, _ := bufio.NewReader(f).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("not applied")
	}
	return nil
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

func (r *rolloutFlags) rollout(p *plans.Plan, parallel int) runner.Rollout {
	ro := runner.Rollout{Parallel: parallel, Canary: p.Rollout.Canary, Batch: p.Rollout.Batch, MaxFailures: p.Rollout.MaxFailures}
	if r.canary >= 0 {
		ro.Canary = r.canary
	}
	if r.batch >= 0 {
		ro.Batch = r.batch
	}
	if r.maxFailures >= 0 {
		ro.MaxFailures = r.maxFailures
	}
	return ro
}
