package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
	"github.com/piwall/piwall/runner"
)

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

func writePlanFile(path string, planPath string, p *plans.Plan, c *runner.Changes) error {
	pf := planFile{Format: 1, PlanPath: planPath, PlanDigest: p.Digest()}
	for _, h := range c.Hosts {
		if h.Err != nil {
			continue
		}
		pf.Hosts = append(pf.Hosts, planFileEntry{Host: h.Target.Label, Fingerprint: h.ChangeSet.Fingerprint, V4: h.ChangeSet.Desired.V4.Text(), V6: h.ChangeSet.Desired.V6.Text()})
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
			return nil, modules.WithHint(errors.New("the host changed since the plan was saved"), "run piwall plan --out again")
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
