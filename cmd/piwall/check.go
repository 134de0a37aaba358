package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

// checkArgs are check's arguments, parsed.
type checkArgs struct {
	remoteFlags
	path string
}

func parseCheck(c *command, args []string, std stdio) (*checkArgs, error) {
	a := &checkArgs{}
	fs := newFlagSet(c, std)
	a.remoteFlags.register(fs)
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if a.path, err = planPath(positional); err != nil {
		return nil, err
	}
	return a, nil
}

func runCheck(ctx context.Context, c *command, args []string, std stdio) error {
	a, err := parseCheck(c, args, std)
	if err != nil {
		return err
	}
	p, targets, err := loadTargets(a.path, &a.remoteFlags, std)
	if err != nil {
		return err
	}
	r := newRemote(p, targets, &a.remoteFlags, nil)
	defer r.printStats(std.errOut)
	prog := newProgress(std.errOut, "checking", len(targets), a.noColor)
	r.fleet.Events = prog.event
	start := time.Now()
	checks := r.fleet.Check(ctx, targets, checkWant())
	took := time.Since(start)
	prog.stop()
	failed := 0
	for _, h := range checks {
		if !h.OK() {
			failed++
		}
	}
	if a.json {
		if err := writeJSON(std.out, jsonChecks(checks, took)); err != nil {
			return err
		}
	} else {
		printChecks(std.out, checks, took)
	}
	if failed > 0 {
		return fmt.Errorf("%s of %d failed the check", count(failed, "host"), len(checks))
	}
	return nil
}

// checkWant is what check wants of each host: the plan's names resolved
// there and its persisted rules, then the probes of its plan.
func checkWant() runner.CheckWant {
	return runner.CheckWant{
		Request: func(t inventory.Target) modules.FactsRequest { return modules.CheckRequest(t.Host) },
		Check: func(t inventory.Target, f *modules.Facts) (*modules.Check, error) {
			return modules.NewCheck(t.Host, f)
		},
	}
}

// printChecks is check's human view: per host, a header line, then a table
// of every probe and fact with what was expected and what was seen, then
// the host's error and hints if it could not be checked; the last line
// counts hosts.
func printChecks(w io.Writer, checks []runner.HostCheck, took time.Duration) {
	passed := 0
	for i, h := range checks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if h.Err != nil {
			msg := h.Err.Error()
			if se, ok := h.Err.(*runner.StepError); ok && se.Host == h.Target.Label {
				msg = se.Step + ": " + se.Err.Error()
			}
			fmt.Fprintf(w, "%s (%s): not checked: %s\n", h.Target.Label, h.Target.Addr(), msg)
			for _, hint := range modules.Hints(h.Err) {
				fmt.Fprintf(w, "  hint: %s\n", hint)
			}
			continue
		}
		held, skipped := 0, 0
		for _, f := range h.Findings {
			switch {
			case f.Skipped:
				skipped++
			case f.OK:
				held++
			}
		}
		verdict := "passed"
		if h.OK() {
			passed++
		} else {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "%s (%s): %s: %d held, %d failed, %d not probed, %.1fs\n",
			h.Target.Label, h.Target.Addr(), verdict, held, h.Failed(), skipped, h.Duration.Seconds())
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  \tPROBE\tEXPECTED\tSEEN\tTIME\tFROM")
		for _, f := range h.Findings {
			state := "ok"
			switch {
			case f.Skipped:
				state = "--"
			case !f.OK:
				state = "FAIL"
			}
			t := "-"
			if f.Took > 0 {
				t = fmt.Sprintf("%dms", f.Took.Milliseconds())
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", state, f.What, f.Expected, f.Seen, t, f.From)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "Check: %d passed, %d failed, in %.1fs.\n", passed, len(checks)-passed, took.Seconds())
}

type jsonCheck struct {
	Host     string        `json:"host"`
	Address  string        `json:"address"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Hints    []string      `json:"hints,omitempty"`
	Seconds  float64       `json:"seconds"`
	Findings []jsonFinding `json:"findings"`
}

type jsonFinding struct {
	Probe    string `json:"probe"`
	From     string `json:"from"`
	Expected string `json:"expected"`
	Seen     string `json:"seen"`
	Millis   int64  `json:"ms"`
	OK       bool   `json:"ok"`
	Skipped  bool   `json:"skipped,omitempty"`
}

type jsonCheckSummary struct {
	Passed  int     `json:"passed"`
	Failed  int     `json:"failed"`
	Seconds float64 `json:"seconds"`
}

// jsonChecks is the document of a check.
func jsonChecks(checks []runner.HostCheck, took time.Duration) jsonDoc {
	var doc jsonDoc
	sum := jsonCheckSummary{Seconds: took.Seconds()}
	for _, h := range checks {
		j := jsonCheck{Host: h.Target.Label, Address: h.Target.Addr(), OK: h.OK(), Seconds: h.Duration.Seconds(), Findings: []jsonFinding{}}
		if h.Err != nil {
			j.Error, j.Hints = h.Err.Error(), modules.Hints(h.Err)
		}
		for _, f := range h.Findings {
			j.Findings = append(j.Findings, jsonFinding{Probe: f.What, From: f.From, Expected: f.Expected, Seen: f.Seen,
				Millis: f.Took.Milliseconds(), OK: f.OK, Skipped: f.Skipped})
		}
		if j.OK {
			sum.Passed++
		} else {
			sum.Failed++
		}
		doc.Checks = append(doc.Checks, j)
	}
	doc.CheckSummary = &sum
	return doc
}
