package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

// change is what apply and rollback share: the change sets read from the
// hosts, shown, confirmed by the operator, rolled out and reported. They
// differ only in what they want of each host and in their words.
type change struct {
	want     runner.Want
	opt      runner.ApplyOptions
	yes      bool
	verb     string // "apply", "roll back"
	question string // the prompt, before "N hosts?"
	phase    string // the progress of the rollout: "applying", "rolling back"
}

// run does the change over r's hosts.
func (ch change) run(ctx context.Context, r *remote, rf *remoteFlags, std stdio) error {
	defer r.printStats(std.errOut)
	prog := newProgress(std.errOut, "reading facts", len(r.targets), rf.noColor)
	r.fleet.Events = prog.event
	changes := r.fleet.Plan(ctx, r.targets, ch.want, true)
	defer changes.Close()
	// The live progress is done before anything else is printed: a redraw
	// would overwrite the plan and the prompt.
	prog.stop()
	counts := changes.Count()
	if !rf.json {
		printPlan(std.out, changes, rf.raw)
		printPlanSummary(std.out, counts)
	}
	if counts[runner.PlanChanges] > 0 && !ch.yes {
		if err := confirm(std, ch.verb, fmt.Sprintf("%s %s?", ch.question, count(counts[runner.PlanChanges], "host"))); err != nil {
			return err
		}
	}
	r.fleet.Events = nil
	if counts[runner.PlanChanges] > 0 {
		prog = newProgress(std.errOut, ch.phase, counts[runner.PlanChanges], rf.noColor)
		r.fleet.Events = prog.event
	}
	// With nothing to change, Apply only sorts the hosts into outcomes.
	outs := r.fleet.Apply(ctx, changes, ch.opt)
	if r.fleet.Events != nil {
		prog.stop()
	}
	n := runner.CountOutcomes(outs)
	switch {
	case rf.json:
		if err := writeJSON(std.out, jsonChanges(changes, outs)); err != nil {
			return err
		}
	case counts[runner.PlanChanges] == 0 && counts[runner.PlanFailed] == 0:
		fmt.Fprintln(std.out, "No changes: every host already has its rules.")
	default:
		printOutcomes(std.out, outs, n)
	}
	if failed := n[runner.Failed] + n[runner.Reverted]; failed > 0 {
		return fmt.Errorf("%s failed or reverted", count(failed, "host"))
	}
	return nil
}

// confirm asks the operator on a terminal, and refuses without one.
func confirm(std stdio, verb, question string) error {
	f, ok := std.in.(*os.File)
	if !ok || !isTerminal(f) {
		return modules.WithHint(fmt.Errorf("refusing to %s without a terminal to confirm on", verb), "--yes")
	}
	fmt.Fprintf(std.errOut, "%s Only 'yes' goes on: ", question)
	line, _ := bufio.NewReader(f).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("nothing changed: the answer was not 'yes'")
	}
	return nil
}
