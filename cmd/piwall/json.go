package main

// The JSON view (--json) of plans, outcomes, history, checks and states: the same values
// the human view prints, for programs. It is stable: fields are added,
// never renamed, and never change meaning. Its shape is documented in
// README.md.

import (
	"encoding/json"
	"io"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/runner"
)

type jsonDoc struct {
	FormatVersion string        `json:"format_version"`
	Hosts         []jsonHost    `json:"hosts,omitempty"`
	Outcomes      []jsonOutcome `json:"outcomes,omitempty"`
	Summary       *jsonSummary  `json:"summary,omitempty"`
	History       *jsonHistory  `json:"history,omitempty"`
	// Checks and CheckSummary are check's: per host, every probe.
	Checks       []jsonCheck       `json:"checks,omitempty"`
	CheckSummary *jsonCheckSummary `json:"check_summary,omitempty"`
	// States are status's: per host, its state.
	States []jsonState `json:"states,omitempty"`
	// Drops are logs': the drop log, grouped.
	Drops []jsonDropGroup `json:"drops,omitempty"`
}

type jsonHost struct {
	Host    string            `json:"host"`
	Address string            `json:"address"`
	Status  runner.PlanStatus `json:"status"` // changes, unchanged, failed
	Error   string            `json:"error,omitempty"`
	Hints   []string          `json:"hints,omitempty"`
	Backend string            `json:"backend,omitempty"` // nf_tables or legacy
	Install bool              `json:"install,omitempty"`
	// InstallWhy says what is missing; EnableRestore that apply enables
	// netfilter-persistent; Ephemeral why the rules would not outlast a
	// reboot.
	InstallWhy    string `json:"install_why,omitempty"`
	EnableRestore bool   `json:"enable_restore,omitempty"`
	Ephemeral     string `json:"ephemeral,omitempty"`
	// Kept: the host\'s own services the rules keep working, and why.
	Kept  []string              `json:"kept,omitempty"`
	Names []firewall.Resolution `json:"names,omitempty"`
	// Refresh: each name the host refreshes, what its sets hold, what
	// changed since the last refresh, and the last refresh and failure.
	Refresh  []modules.NameReport `json:"refresh,omitempty"`
	Changes  []firewall.Change    `json:"changes,omitempty"`
	Lockout  string               `json:"lockout,omitempty"`
	Warnings []string             `json:"warnings,omitempty"`
}

type jsonOutcome struct {
	Host       string            `json:"host"`
	Status     runner.HostStatus `json:"status"` // unchanged, applied, reverted, failed, skipped
	Generation int               `json:"generation,omitempty"`
	Error      string            `json:"error,omitempty"`
	Hints      []string          `json:"hints,omitempty"`
	Warnings   []string          `json:"warnings,omitempty"`
	Seconds    float64           `json:"seconds"`
}

// jsonSummary counts hosts: changed, unchanged and failed as the plan
// found them (failed: as the run ended, when there are outcomes), and the
// outcomes of the others.
type jsonSummary struct {
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
	Applied   int `json:"applied"`
	Reverted  int `json:"reverted"`
	Skipped   int `json:"skipped"`
}

type jsonHistory struct {
	Host        string               `json:"host"`
	Current     int                  `json:"current"`
	Generations []modules.Generation `json:"generations"`
}

// jsonChanges is the document of a plan, and of an apply or rollback when
// outs is not nil.
func jsonChanges(c *runner.Changes, outs []runner.Outcome) jsonDoc {
	var doc jsonDoc
	for _, h := range c.Hosts {
		j := jsonHost{Host: h.Target.Label, Address: h.Target.Addr(), Status: h.Status()}
		if h.Err != nil {
			j.Error, j.Hints = h.Err.Error(), modules.Hints(h.Err)
		}
		if cs := h.ChangeSet; cs != nil {
			j.Install, j.Names, j.Changes, j.Warnings = cs.Install, cs.Desired.Names, cs.Changes, cs.Warnings
			j.Backend, j.Refresh = cs.Facts.Backend, cs.Refresh
			j.InstallWhy, j.EnableRestore, j.Ephemeral, j.Kept = cs.InstallWhy, cs.EnableRestore, cs.Ephemeral, cs.Kept
			if cs.Lockout != nil {
				j.Lockout = cs.Lockout.Error()
				j.Hints = append(j.Hints, modules.Hints(cs.Lockout)...)
			}
		}
		doc.Hosts = append(doc.Hosts, j)
	}
	counts := c.Count()
	sum := jsonSummary{Changed: counts[runner.PlanChanges], Unchanged: counts[runner.PlanUnchanged], Failed: counts[runner.PlanFailed]}
	if outs != nil {
		n := runner.CountOutcomes(outs)
		sum.Failed, sum.Applied, sum.Reverted, sum.Skipped = n[runner.Failed], n[runner.Applied], n[runner.Reverted], n[runner.Skipped]
	}
	for _, o := range outs {
		j := jsonOutcome{Host: o.Host, Status: o.Status, Generation: o.Generation, Hints: o.Hints, Warnings: o.Warnings, Seconds: o.Duration.Seconds()}
		if o.Err != nil {
			j.Error = o.Err.Error()
		}
		doc.Outcomes = append(doc.Outcomes, j)
	}
	doc.Summary = &sum
	return doc
}

func writeJSON(w io.Writer, doc jsonDoc) error {
	doc.FormatVersion = "1"
	return writeJSONValue(w, doc)
}

// writeJSONValue writes a document, indented.
func writeJSONValue(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
