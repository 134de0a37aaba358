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
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/runner"
)

func printPlan(w io.Writer, c *runner.Changes, raw bool) {
	for _, h := range c.Hosts {
		switch h.Status() {
		case runner.PlanFailed:
			fmt.Fprintf(w, "%s (%s): failed: %v\n", h.Target.Label, h.Target.Addr(), h.Err)
			for _, hint := range modules.Hints(h.Err) {
				fmt.Fprintf(w, "  hint: %s\n", hint)
			}
		case runner.PlanUnchanged:
			fmt.Fprintf(w, "%s: no changes.\n", hostHeader(h))
			printNames(w, h.ChangeSet)
			printWarnings(w, h.ChangeSet)
		default:
			printChangeSet(w, h, raw)
		}
	}
}

// hostHeader names a planned host: its label, its address and the
// iptables backend it uses.
func hostHeader(h runner.HostChanges) string {
	if b := h.ChangeSet.Facts.Backend; b != "" {
		return fmt.Sprintf("%s (%s, %s)", h.Target.Label, h.Target.Addr(), b)
	}
	return fmt.Sprintf("%s (%s)", h.Target.Label, h.Target.Addr())
}

func printChangeSet(w io.Writer, h runner.HostChanges, raw bool) {
	cs := h.ChangeSet
	add, remove, update := cs.Counts()
	fmt.Fprintf(w, "%s: %d to add, %d to remove, %d to change\n", hostHeader(h), add, remove, update)
	if cs.Install {
		fmt.Fprintf(w, "  iptables: %s; apply installs iptables, netfilter-persistent and iptables-persistent with apt\n", cs.InstallWhy)
	}
	if cs.EnableRestore {
		fmt.Fprintf(w, "  boot: netfilter-persistent is disabled, so the boot would not load the rules; apply enables it\n")
	}
	printNames(w, cs)
	for _, k := range cs.Kept {
		fmt.Fprintf(w, "  keeps %s\n", k)
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
		for _, hint := range modules.Hints(cs.Lockout) {
			fmt.Fprintf(w, "    hint: %s\n", hint)
		}
	}
	printWarnings(w, cs)
}

func printWarnings(w io.Writer, cs *modules.ChangeSet) {
	for _, warn := range cs.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}

// printPlanSummary is the last line of a plan.
func printPlanSummary(w io.Writer, counts map[runner.PlanStatus]int) {
	fmt.Fprintf(w, "Plan: %s to change, %d unchanged, %d failed.\n",
		count(counts[runner.PlanChanges], "host"), counts[runner.PlanUnchanged], counts[runner.PlanFailed])
}

// printOutcomes is the end of an apply or rollback: a table of every host
// with its outcome, its changes and its time, then the errors, hints and
// warnings of each host, then the counts.
func printOutcomes(w io.Writer, outs []runner.Outcome, counts map[runner.HostStatus]int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tOUTCOME\tCHANGES\tGENERATION\tTIME")
	for _, o := range outs {
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
		if o.Err != nil {
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
		for _, warn := range o.Warnings {
			fmt.Fprintf(w, "%s: warning: %s\n", o.Host, warn)
		}
	}
	fmt.Fprintf(w, "Done: %d applied, %d unchanged, %d reverted, %d failed, %d skipped.\n",
		counts[runner.Applied], counts[runner.Unchanged], counts[runner.Reverted], counts[runner.Failed], counts[runner.Skipped])
}

// printNames shows each name as the host resolves it now and, where the
// host refreshes it, what its refresher keeps: for a host with changes or
// without, since a name can move while the rules stay.
func printNames(w io.Writer, cs *modules.ChangeSet) {
	for _, r := range cs.Desired.Names {
		fmt.Fprintf(w, "  name: %s\n", resolutionLine(r))
	}
	for _, r := range cs.Refresh {
		fmt.Fprintf(w, "  refresh: %s\n", refreshLine(r))
	}
}

// refreshLine says what the host's refresher keeps of a name: "api.lab
// every 5m0s, last 14:03:10Z; sets hold 198.18.1.11; next refresh adds
// 198.18.1.21; kept for the grace window: 198.18.1.11; last lookup failed
// at 14:04:10Z: ...".
func refreshLine(r modules.NameReport) string {
	s := fmt.Sprintf("%s every %s", r.Name, r.Every)
	switch {
	case r.Refreshed != nil:
		s += ", last " + r.Refreshed.Format(time.TimeOnly+"Z07:00")
	case r.Held == nil:
		s += ", not refreshed on the host yet: apply fills its sets with the addresses above"
	}
	if r.Held != nil {
		s += "; sets hold " + addrs(r.Held)
	}
	if len(r.New) > 0 && r.Held != nil {
		s += "; next refresh adds " + addrs(r.New)
	}
	if len(r.Gone) > 0 {
		s += "; kept for the grace window: " + addrs(r.Gone)
	}
	if r.Failed != nil {
		s += "; last lookup failed at " + r.Failed.Format(time.TimeOnly+"Z07:00") + ": " + r.Error
	}
	return s
}

func addrs(as []netip.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return strings.Join(out, ", ")
}
