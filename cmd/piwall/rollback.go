package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

// rollbackArgs are rollback's arguments, parsed.
type rollbackArgs struct {
	remoteFlags
	rollout     rolloutFlags
	hosts       []string
	plan        string
	to          int
	open        bool
	yes, force  bool
	untilReboot bool
}

func parseRollback(c *command, args []string, std stdio) (*rollbackArgs, error) {
	a := &rollbackArgs{}
	fs := newFlagSet(c, std)
	a.remoteFlags.register(fs)
	fs.StringVar(&a.plan, "plan", "", "the plan (`PATH`) whose host labels HOST may be (default: the .hcl files here, if any)")
	fs.IntVar(&a.to, "to", 0, "the generation `N` to go back to (default: the one before the current)")
	fs.BoolVar(&a.open, "open", false, "the emergency opening: every policy ACCEPT, every rule flushed")
	fs.BoolVar(&a.yes, "yes", false, "roll back without asking (needed without a terminal)")
	fs.BoolVar(&a.force, "force", false, "roll back even to rules that fail the lockout check")
	fs.BoolVar(&a.untilReboot, "until-reboot", false, "roll back even hosts whose rules cannot outlast a reboot (an overlay or tmpfs root)")
	a.rollout.register(fs)
	var err error
	if a.hosts, err = parseInterleaved(fs, args); err != nil {
		return nil, err
	}
	if len(a.hosts) == 0 {
		return nil, modules.WithHint(errors.New("which hosts?"), "piwall rollback pi-03, or pi@192.0.2.13")
	}
	if a.open && a.to != 0 {
		return nil, errors.New("--to and --open exclude each other")
	}
	return a, nil
}

func runRollback(ctx context.Context, c *command, args []string, std stdio) error {
	a, err := parseRollback(c, args, std)
	if err != nil {
		return err
	}
	rf := &a.remoteFlags
	p, targets, err := lookupHosts(a.hosts, a.plan, rf, std)
	if err != nil {
		return err
	}
	gen, open := modules.Previous, a.open
	if a.to != 0 {
		gen = a.to
	}
	want := runner.Want{
		Request: func(inventory.Target) modules.FactsRequest {
			if open {
				return modules.FactsRequest{}
			}
			return modules.FactsRequest{Rollback: gen}
		},
		ChangeSet: func(t inventory.Target, f *modules.Facts) (*modules.ChangeSet, error) {
			return modules.Rollback(t.Label, f, open)
		},
	}
	ch := change{want: want, yes: a.yes, verb: "roll back", question: "Roll back", phase: "rolling back",
		opt: runner.ApplyOptions{Force: a.force, UntilReboot: a.untilReboot, Operator: operator(), Kind: "rollback"}}
	return ch.run(ctx, newRemote(p, targets, rf, &a.rollout), rf, std)
}

func runHistory(ctx context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var rf remoteFlags
	rf.register(fs)
	planArg := fs.String("plan", "", "the plan (`PATH`) whose host labels HOST may be")
	hosts, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(hosts) != 1 {
		return modules.WithHint(errors.New("which host?"), "piwall history pi-03")
	}
	p, targets, err := lookupHosts(hosts, *planArg, &rf, std)
	if err != nil {
		return err
	}
	r := newRemote(p, targets, &rf, nil)
	defer r.printStats(std.errOut)
	f, err := r.fleet.Facts(ctx, targets[0], modules.FactsRequest{History: true})
	if err != nil {
		return err
	}
	if rf.json {
		return writeJSON(std.out, jsonDoc{History: &jsonHistory{Host: targets[0].Label, Current: f.Generation, Generations: f.History}})
	}
	if len(f.History) == 0 {
		fmt.Fprintf(std.out, "%s: piwall has changed nothing here yet.\n", targets[0].Label)
		return nil
	}
	tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GENERATION\tTIME\tOPERATOR\tKIND\tOUTCOME\tFROM")
	for _, g := range f.History {
		mark := ""
		if g.Number == f.Generation {
			mark = " (current)"
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\n", g.Number, mark, g.Time.Format("2006-01-02 15:04:05Z07:00"), dash(g.Operator), g.Kind, g.Outcome, dash(g.Source))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
