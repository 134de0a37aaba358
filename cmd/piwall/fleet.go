package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
)

// fleetPlan is a plan computed against the live hosts: a change set per
// host, and for apply the open connection its facts came from.
type fleetPlan struct {
	hosts    []hostPlan
	sessions []*runner.Session
	conns    []runner.Conn // nil where gathering failed or the plan was only shown
}

// gather reads every target's facts and computes its change set, at most
// parallel hosts at once. keep leaves the connections open for apply.
// With saved, each host's desired rulesets come from the saved plan, and a
// host whose facts no longer match the saved fingerprint fails.
func gather(ctx context.Context, targets []inventory.Target, d runner.Dialer, parallel int, prog progress, keep bool, saved *planFile) *fleetPlan {
	fp := &fleetPlan{hosts: make([]hostPlan, len(targets)), sessions: make([]*runner.Session, len(targets)), conns: make([]runner.Conn, len(targets))}
	forEach(ctx, len(targets), parallel, func(ctx context.Context, i int) {
		t := targets[i]
		s := &runner.Session{Dialer: d, Target: t, Progress: runnerProgress(prog)}
		defer prog.report(t.Label, stepDone)
		fp.sessions[i] = s
		hp := hostPlan{label: t.Label, addr: t.Addr()}
		var names []string
		if t.Host != nil {
			names = firewall.Names(t.Host.Policy)
		}
		f, conn, err := s.Gather(ctx, modules.FactsRequest{Names: names})
		if err == nil {
			if saved != nil {
				hp.cs, err = saved.changeSet(t.Label, f)
			} else {
				hp.cs, err = modules.Plan(t.Host, f)
			}
			if err != nil {
				err = &runner.StepError{Host: t.Label, Step: "plan", Err: err}
			}
		}
		hp.err = err
		fp.hosts[i] = hp
		if conn != nil && (!keep || err != nil) {
			conn.Close()
			conn = nil
		}
		fp.conns[i] = conn
	})
	return fp
}

func (fp *fleetPlan) close() {
	for _, c := range fp.conns {
		if c != nil {
			c.Close()
		}
	}
}

// planFile is a plan saved with `piwall plan --out`: the desired rulesets
// of each host with the fingerprint of the facts they were planned
// against, and the plan they came from.
type planFile struct {
	Format     int             `json:"format"`
	PlanPath   string          `json:"plan_path"`
	PlanDigest string          `json:"plan_digest"`
	Hosts      []planFileEntry `json:"hosts"`
}

type planFileEntry struct {
	Host        string `json:"host"`
	Fingerprint string `json:"fingerprint"`
	V4          string `json:"v4"`
	V6          string `json:"v6"`
}

func writePlanFile(path string, planPath string, p *plans.Plan, hosts []hostPlan) error {
	pf := planFile{Format: 1, PlanPath: planPath, PlanDigest: p.Digest()}
	for _, h := range hosts {
		if h.err != nil {
			continue
		}
		pf.Hosts = append(pf.Hosts, planFileEntry{Host: h.label, Fingerprint: h.cs.Fingerprint, V4: h.cs.Desired.V4.Text(), V6: h.cs.Desired.V6.Text()})
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readPlanFile reads a saved plan, or returns nil if path is not one.
func readPlanFile(path string) (*planFile, error) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 || b[0] != '{' {
		return nil, nil // a directory, or a .hcl file
	}
	var pf planFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return nil, fmt.Errorf("reading saved plan %s: %w", path, err)
	}
	if pf.Format != 1 {
		return nil, fmt.Errorf("saved plan %s has format %d; this piwall reads format 1", path, pf.Format)
	}
	return &pf, nil
}

// changeSet is a host's change set from the saved plan, if the host is
// still as it was when the plan was made.
func (pf *planFile) changeSet(host string, f *modules.Facts) (*modules.ChangeSet, error) {
	for _, e := range pf.Hosts {
		if e.Host != host {
			continue
		}
		if e.Fingerprint != f.Fingerprint() {
			return nil, fmt.Errorf("the host changed since the plan was saved (hint: run piwall plan again)")
		}
		d := &firewall.Desired{}
		var err error
		if d.V4, err = firewall.Parse(e.V4); err != nil {
			return nil, err
		}
		if d.V6, err = firewall.Parse(e.V6); err != nil {
			return nil, err
		}
		return modules.Compare(host, d, f), nil
	}
	return nil, fmt.Errorf("the saved plan has no rulesets for this host")
}
