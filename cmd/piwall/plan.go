package main

import (
	"context"
	"fmt"
	"os"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
)

// exitChanges is plan's exit code under --detailed-exitcode when some host
// would change.
const exitChanges = 2

// errChanges is returned by plan --detailed-exitcode when there are changes.
var errChanges = fmt.Errorf("changes")

func runPlan(ctx context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var rf remoteFlags
	rf.register(fs)
	out := fs.String("out", "", "save the plan to `FILE`, for piwall apply FILE")
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when nothing would change, 2 when something would, 1 on errors")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path, err := planPath(positional)
	if err != nil {
		return err
	}
	p, targets, err := loadTargets(path, &rf, std)
	if err != nil {
		return err
	}
	r := newRemote(p, targets, &rf, nil)
	defer r.printStats(std.errOut)
	prog := newProgress(std.errOut, "reading facts", len(targets), rf.noColor)
	r.fleet.Events = prog.event
	changes := r.fleet.Plan(ctx, targets, planWant(p), false)
	prog.stop()
	counts := changes.Count()
	if rf.json {
		if err := writeJSON(std.out, jsonChanges(changes, nil)); err != nil {
			return err
		}
	} else {
		printPlan(std.out, changes, rf.raw)
		printPlanSummary(std.out, counts)
	}
	if *out != "" {
		var sets []*modules.ChangeSet
		for _, h := range changes.Hosts {
			sets = append(sets, h.ChangeSet)
		}
		b, err := modules.NewSavedPlan(path, p.Digest(), sets).Marshal()
		if err == nil {
			err = os.WriteFile(*out, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("saving the plan: %w", err)
		}
		fmt.Fprintf(std.errOut, "Saved the plan to %s: piwall apply %s applies it if no host changes meanwhile.\n", *out, *out)
	}
	switch {
	case counts[runner.PlanFailed] > 0:
		return fmt.Errorf("%s failed", count(counts[runner.PlanFailed], "host"))
	case *detailed && counts[runner.PlanChanges] > 0:
		return errChanges
	}
	return nil
}

// planWant is what plan and apply want of each host: the plan's rules,
// with the names they use resolved on the host.
func planWant(p *plans.Plan) runner.Want {
	digest := p.Digest()
	return runner.Want{
		Request: func(t inventory.Target) modules.FactsRequest {
			return modules.FactsRequest{Names: firewall.Names(t.Host.Policy)}
		},
		ChangeSet: func(t inventory.Target, f *modules.Facts) (*modules.ChangeSet, error) {
			cs, err := modules.NewChangeSet(t.Host, f)
			if cs != nil {
				cs.Source = digest
			}
			return cs, err
		},
	}
}
