package main

// The human view of plans and outcomes. Rules of this file: stdout carries
// what was asked for (the plan, the outcomes), stderr the progress and
// warnings; every line is plain ASCII words (colour never carries meaning);
// a host with nothing to do says "no changes" in a sentence; the last line
// counts hosts. The view computes nothing: it prints change sets and
// outcomes as they are.

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/runner"
)

// hostPlan is one host's part of a plan: its change set, or why there is none.
type hostPlan struct {
	label, addr string
	cs          *modules.ChangeSet
	err         error
}

func printPlan(w io.Writer, hosts []hostPlan, raw bool) {
	for _, h := range hosts {
		switch {
		case h.err != nil:
			fmt.Fprintf(w, "%s (%s): failed: %v\n", h.label, h.addr, h.err)
		case h.cs.Unchanged():
			fmt.Fprintf(w, "%s (%s): no changes.\n", h.label, h.addr)
		default:
			printChangeSet(w, h, raw)
		}
	}
}

func printChangeSet(w io.Writer, h hostPlan, raw bool) {
	cs := h.cs
	add, remove, update := cs.Counts()
	fmt.Fprintf(w, "%s (%s): %d to add, %d to remove, %d to change\n", h.label, h.addr, add, remove, update)
	if cs.Install {
		fmt.Fprintf(w, "  iptables: not installed; apply installs iptables and netfilter-persistent with apt\n")
	}
	for _, r := range cs.Desired.Names {
		fmt.Fprintf(w, "  name: %s\n", resolutionLine(r))
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		var lines []string
		for _, c := range cs.Changes {
			if c.Family != fam {
				continue
			}
			what := c.What
			if raw && c.Raw != "" {
				what = c.Raw
			}
			lines = append(lines, "    "+c.Action.Symbol()+" "+what)
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "  %s:\n%s\n", fam, strings.Join(lines, "\n"))
		}
	}
	if cs.Lockout != nil {
		fmt.Fprintf(w, "  warning: lockout: %v\n", cs.Lockout)
	}
	for _, warn := range cs.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}

// planSummary is the last line of a plan.
func planSummary(hosts []hostPlan) (line string, changed, failed int) {
	unchanged := 0
	for _, h := range hosts {
		switch {
		case h.err != nil:
			failed++
		case h.cs.Unchanged():
			unchanged++
		default:
			changed++
		}
	}
	return fmt.Sprintf("Plan: %s to change, %d unchanged, %d failed.", count(changed, "host"), unchanged, failed), changed, failed
}

// printOutcomes is the end of an apply or rollback: a table of every host
// with its outcome, its changes and its time, then the errors and hints of
// the hosts that did not make it, then the counts.
func printOutcomes(w io.Writer, outs []runner.Outcome) (failed int) {
	counts := map[runner.HostStatus]int{}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tOUTCOME\tCHANGES\tGENERATION\tTIME")
	for _, o := range outs {
		counts[o.Status]++
		changes, gen, took := "-", "-", "-"
		if o.Changes != nil {
			changes = "none"
			if !o.Changes.Unchanged() {
				add, remove, update := o.Changes.Counts()
				changes = fmt.Sprintf("+%d -%d ~%d", add, remove, update)
				if o.Changes.Install {
					changes += ", install"
				}
			}
		}
		if o.Generation > 0 {
			gen = fmt.Sprint(o.Generation)
		}
		if o.Duration > 0 {
			took = fmt.Sprintf("%.1fs", o.Duration.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Host, o.Status, changes, gen, took)
	}
	tw.Flush()
	for _, o := range outs {
		if o.Err == nil {
			continue
		}
		// A step's error names its host already.
		msg := o.Err.Error()
		if se, ok := o.Err.(*runner.StepError); ok && se.Host == o.Host {
			msg = se.Step + ": " + se.Err.Error()
		}
		fmt.Fprintf(w, "%s: %s: %s\n", o.Host, o.Status, msg)
		for _, hint := range o.Hints {
			fmt.Fprintf(w, "  hint: %s\n", hint)
		}
	}
	fmt.Fprintf(w, "Done: %d applied, %d unchanged, %d reverted, %d failed, %d skipped.\n",
		counts[runner.Applied], counts[runner.Unchanged], counts[runner.Reverted], counts[runner.Failed], counts[runner.Skipped])
	return counts[runner.Failed] + counts[runner.Reverted]
}
