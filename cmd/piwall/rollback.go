package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
)

func runRollback(ctx context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var rf remoteFlags
	rf.register(fs)
	planArg := fs.String("plan", "", "the plan (`PATH`) whose host labels HOST may be (default: the .hcl files here, if any)")
	to := fs.Int("to", 0, "the generation `N` to go back to (default: the one before the current)")
	open := fs.Bool("open", false, "the emergency opening: every policy ACCEPT, every rule flushed")
	yes := fs.Bool("yes", false, "roll back without asking (needed without a terminal)")
	force := fs.Bool("force", false, "roll back even to rules that fail the lockout check")
	hosts, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return errors.New("which hosts? (hint: piwall rollback pi-03, or pi@192.0.2.13)")
	}
	if *open && *to != 0 {
		return errors.New("--to and --open exclude each other")
	}
	targets, err := resolveHosts(hosts, *planArg, &rf, std)
	if err != nil {
		return err
	}
	gen := modules.Previous
	if *to != 0 {
		gen = *to
	}
	d := newDialer(&rf, std)
	defer printStats(d, std.errOut, labels(targets))
	prog := newProgress(std.errOut, "reading facts", len(targets), rf.noColor)
	type prepared struct {
		s    *runner.Session
		cs   *modules.ChangeSet
		conn runner.Conn
		err  error
		n    int
	}
	preps := make([]prepared, len(targets))
	forEach(ctx, len(targets), max(rf.parallel, 10), func(ctx context.Context, i int) {
		s := &runner.Session{Dialer: d, Target: targets[i], Progress: runnerProgress(prog)}
		defer prog.report(targets[i].Label, stepDone)
		req := modules.FactsRequest{}
		if !*open {
			req.Generations = []int{gen}
		}
		f, conn, err := s.Gather(ctx, req)
		p := prepared{s: s, conn: conn, err: err}
		if err == nil {
			n := gen
			if n == modules.Previous {
				n = f.Generation - 1
			}
			p.n = n
			if !*open && n < 1 {
				p.err = fmt.Errorf("%s: no generation before the current one (%d) to roll back to (hint: piwall history %s)", targets[i].Label, f.Generation, targets[i].Label)
			} else if p.cs, p.err = modules.Rollback(targets[i].Label, f, n, *open); p.err != nil {
				p.err = &runner.StepError{Host: targets[i].Label, Step: "rollback", Err: p.err}
			}
		}
		if p.err != nil && conn != nil {
			conn.Close()
			p.conn = nil
		}
		preps[i] = p
	})
	var hp []hostPlan
	for i, p := range preps {
		hp = append(hp, hostPlan{label: targets[i].Label, addr: targets[i].Addr(), cs: p.cs, err: p.err})
	}
	if !rf.json {
		printPlan(std.out, hp, rf.raw)
	}
	if _, changed, _ := planSummary(hp); changed > 0 && !*yes {
		if err := confirm(std, changed); err != nil {
			for _, p := range preps {
				if p.conn != nil {
					p.conn.Close()
				}
			}
			return err
		}
	}
	prog.stop()
	outs := make([]runner.Outcome, len(preps))
	prog = newProgress(std.errOut, "rolling back", len(preps), rf.noColor)
	defer prog.stop()
	forEach(ctx, len(preps), max(rf.parallel, 10), func(ctx context.Context, i int) {
		defer prog.report(targets[i].Label, stepDone)
		p := preps[i]
		if p.err != nil {
			outs[i] = runner.Outcome{Host: targets[i].Label, Status: runner.Failed, Err: p.err}
			return
		}
		what := "rollback to generation " + strconv.Itoa(p.n)
		if *open {
			what = "rollback --open"
		}
		outs[i] = p.s.Apply(ctx, p.conn, p.cs, runner.ApplyOptions{Force: *force, Operator: operator(), Plan: what, Kind: "rollback"})
	})
	return reportOutcomes(std, rf.json, hp, outs)
}

// resolveHosts turns HOST arguments into targets: a label of the plan (at
// planArg, or in the current directory if it holds .hcl files), else
// [user@]address[:port].
func resolveHosts(hosts []string, planArg string, rf *remoteFlags, std stdio) ([]inventory.Target, error) {
	env, err := inventoryEnv()
	if err != nil {
		return nil, err
	}
	var fromPlan []inventory.Target
	planPath := planArg
	if planPath == "" {
		if files, _ := plans.PlanFiles("."); len(files) > 0 {
			planPath = "."
		}
	}
	if planPath != "" {
		p, diags := plans.Load(planPath, rf.options())
		writeDiagnostics(std.errOut, p.Files, diags, rf.noColor)
		if diags.HasErrors() {
			return nil, errDiagnostics
		}
		fromPlan = inventory.Targets(p, env)
	}
	var out []inventory.Target
	for _, h := range hosts {
		found := false
		for _, t := range fromPlan {
			if t.Label == h {
				out, found = append(out, t), true
			}
		}
		if found {
			continue
		}
		t, err := inventory.FromAddress(h, env)
		if err != nil {
			return nil, fmt.Errorf("%s is neither a host of the plan nor [user@]address[:port]: %w", h, err)
		}
		out = append(out, t)
	}
	return out, nil
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
		return errors.New("which host? (hint: piwall history pi-03)")
	}
	targets, err := resolveHosts(hosts, *planArg, &rf, std)
	if err != nil {
		return err
	}
	s := &runner.Session{Dialer: newDialer(&rf, std), Target: targets[0]}
	f, conn, err := s.Gather(ctx, modules.FactsRequest{History: true})
	if err != nil {
		return err
	}
	conn.Close()
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
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\n", g.Number, mark, g.Time.Format("2006-01-02 15:04:05Z07:00"), dash(g.Operator), g.Kind, g.Outcome, dash(g.Plan))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
