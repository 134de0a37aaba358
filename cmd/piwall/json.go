package main

// The JSON view (--json) of plans, outcomes and history: the same values
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
}

type jsonHost struct {
	Host     string                `json:"host"`
	Address  string                `json:"address"`
	Status   string                `json:"status"` // changes, unchanged, failed
	Error    string                `json:"error,omitempty"`
	Install  bool                  `json:"install,omitempty"`
	Names    []firewall.Resolution `json:"names,omitempty"`
	Changes  []firewall.Change     `json:"changes,omitempty"`
	Lockout  string                `json:"lockout,omitempty"`
	Warnings []string              `json:"warnings,omitempty"`
}

type jsonOutcome struct {
	Host       string   `json:"host"`
	Status     string   `json:"status"` // unchanged, applied, reverted, failed, skipped
	Generation int      `json:"generation,omitempty"`
	Error      string   `json:"error,omitempty"`
	Hints      []string `json:"hints,omitempty"`
	Seconds    float64  `json:"seconds"`
}

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

func jsonHosts(hosts []hostPlan) ([]jsonHost, jsonSummary) {
	var out []jsonHost
	var sum jsonSummary
	for _, h := range hosts {
		j := jsonHost{Host: h.label, Address: h.addr}
		switch {
		case h.err != nil:
			j.Status, j.Error = "failed", h.err.Error()
			sum.Failed++
		case h.cs.Unchanged():
			j.Status = "unchanged"
			sum.Unchanged++
		default:
			j.Status = "changes"
			sum.Changed++
		}
		if h.cs != nil {
			j.Install, j.Names, j.Changes, j.Warnings = h.cs.Install, h.cs.Desired.Names, h.cs.Changes, h.cs.Warnings
			if h.cs.Lockout != nil {
				j.Lockout = h.cs.Lockout.Error()
			}
		}
		out = append(out, j)
	}
	return out, sum
}

func jsonOutcomes(outs []runner.Outcome, sum *jsonSummary) []jsonOutcome {
	var out []jsonOutcome
	for _, o := range outs {
		j := jsonOutcome{Host: o.Host, Status: string(o.Status), Generation: o.Generation, Hints: o.Hints, Seconds: o.Duration.Seconds()}
		if o.Err != nil {
			j.Error = o.Err.Error()
		}
		switch o.Status {
		case runner.Applied:
			sum.Applied++
		case runner.Reverted:
			sum.Reverted++
		case runner.Skipped:
			sum.Skipped++
		}
		out = append(out, j)
	}
	return out
}

func writeJSON(w io.Writer, doc jsonDoc) error {
	doc.FormatVersion = "1"
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
