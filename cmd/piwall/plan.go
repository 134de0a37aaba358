package main

import (
	"context"
	"fmt"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/plans"
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
	d := newDialer(&rf, std)
	defer printStats(d, std.errOut, labels(targets))
	prog := newProgress(std.errOut, "reading facts", len(targets), rf.noColor)
	fp := gather(ctx, targets, d, parallelism(&rf, p), prog, false, nil)
	prog.stop()
	summary, changed, failed := planSummary(fp.hosts)
	if rf.json {
		hosts, sum := jsonHosts(fp.hosts)
		if err := writeJSON(std.out, jsonDoc{Hosts: hosts, Summary: &sum}); err != nil {
			return err
		}
	} else {
		printPlan(std.out, fp.hosts, rf.raw)
		fmt.Fprintln(std.out, summary)
	}
	if *out != "" {
		if err := writePlanFile(*out, path, p, fp.hosts); err != nil {
			return err
		}
		fmt.Fprintf(std.errOut, "Saved the plan to %s: piwall apply %s applies it if no host changes meanwhile.\n", *out, *out)
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%s failed", count(failed, "host"))
	case *detailed && changed > 0:
		return errChanges
	}
	return nil
}

// loadTargets loads the plan at path and the hosts --limit picks.
func loadTargets(path string, rf *remoteFlags, std stdio) (*plans.Plan, []inventory.Target, error) {
	p, diags := plans.Load(path, rf.options())
	writeDiagnostics(std.errOut, p.Files, diags, rf.noColor)
	if diags.HasErrors() {
		return nil, nil, errDiagnostics
	}
	env, err := inventoryEnv()
	if err != nil {
		return nil, nil, err
	}
	targets, err := inventory.Select(inventory.Targets(p, env), rf.limit)
	if err != nil {
		return nil, nil, err
	}
	return p, targets, nil
}

func parallelism(rf *remoteFlags, p *plans.Plan) int {
	if rf.parallel > 0 {
		return rf.parallel
	}
	return p.Rollout.Parallel
}
