package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

// statusArgs are status's arguments, parsed.
type statusArgs struct {
	remoteFlags
	path     string
	detailed bool
}

func parseStatus(c *command, args []string, std stdio) (*statusArgs, error) {
	a := &statusArgs{}
	fs := newFlagSet(c, std)
	a.remoteFlags.register(fs)
	fs.BoolVar(&a.detailed, "detailed", false, "also each chain's policy and each rule with its packet and byte counters")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if a.path, err = planPath(positional); err != nil {
		return nil, err
	}
	return a, nil
}

func runStatus(ctx context.Context, c *command, args []string, std stdio) error {
	a, err := parseStatus(c, args, std)
	if err != nil {
		return err
	}
	p, targets, err := loadTargets(a.path, &a.remoteFlags, std)
	if err != nil {
		return err
	}
	r := newRemote(p, targets, &a.remoteFlags, nil)
	defer r.printStats(std.errOut)
	prog := newProgress(std.errOut, "reading", len(targets), a.noColor)
	r.fleet.Events = prog.event
	states := r.fleet.Status(ctx, targets, planWant(p))
	prog.stop()
	if a.json {
		if err := writeJSON(std.out, jsonStates(states, a.detailed)); err != nil {
			return err
		}
	} else {
		printStates(std.out, states, a.detailed)
	}
	bad := 0
	for _, h := range states {
		if h.Err != nil || h.State.State != modules.InSync {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%s of %d not in sync", count(bad, "host"), len(states))
	}
	return nil
}

// deadManWords and lockWords say a host's dead-man and lock in a few words.
func deadManWords(d *modules.RunState) string {
	if d == nil {
		return "not armed"
	}
	return fmt.Sprintf("armed (%s, run %s)", d.DeadMan, d.Run)
}

func lockWords(l *modules.Lock) string {
	if l == nil {
		return "free"
	}
	return fmt.Sprintf("held by %s since %s", l.Operator, l.Since.UTC().Format("15:04:05Z"))
}

// printStates is status's human view: a table of one line per host, then
// what makes a host other than in sync, then with detailed each host's
// counters; the last line counts hosts by state.
func printStates(w io.Writer, states []runner.HostState, detailed bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tGENERATION\tDEAD-MAN\tLOCK\tBOOT\tDROPS")
	counts := map[string]int{}
	for _, h := range states {
		if h.Err != nil {
			counts["failed"]++
			fmt.Fprintf(tw, "%s\tfailed\t-\t-\t-\t-\t-\n", h.Target.Label)
			continue
		}
		s := h.State
		counts[string(s.State)]++
		gen := "none"
		if s.Generation != nil {
			gen = s.Generation.Line()[len("generation "):]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", h.Target.Label, s.State, gen, deadManWords(s.DeadMan), lockWords(s.Lock), s.Boot, s.Drops)
	}
	tw.Flush()
	for _, h := range states {
		if h.Err != nil {
			msg := h.Err.Error()
			if se, ok := h.Err.(*runner.StepError); ok && se.Host == h.Target.Label {
				msg = se.Step + ": " + se.Err.Error()
			}
			fmt.Fprintf(w, "%s: failed: %s\n", h.Target.Label, msg)
			for _, hint := range modules.Hints(h.Err) {
				fmt.Fprintf(w, "  hint: %s\n", hint)
			}
			continue
		}
		s := h.State
		if s.Changes > 0 {
			fmt.Fprintf(w, "%s: %s against the plan (piwall plan shows them, piwall apply makes them)\n", h.Target.Label, count(s.Changes, "change"))
		}
		if s.Persist != "" {
			fmt.Fprintf(w, "%s: the persisted rules are not the live ones: %s\n", h.Target.Label, s.Persist)
		}
		if s.DeadMan != nil {
			fmt.Fprintf(w, "%s: run %s's rules are live and unconfirmed (%s): its dead-man reverts them\n", h.Target.Label, s.DeadMan.Run, s.DeadMan.Status)
		}
	}
	if detailed {
		for _, h := range states {
			if h.Err != nil {
				continue
			}
			s := h.State
			fmt.Fprintf(w, "\n%s: %d packets (%d bytes) dropped since the rules were loaded\n", h.Target.Label, s.Drops, s.DropBytes)
			fmt.Fprintf(w, "  %10s %12s  %s\n", "PACKETS", "BYTES", "POLICY OR RULE")
			for _, c := range s.Counters {
				fmt.Fprintf(w, "  %10d %12d  %s\n", c.Packets, c.Bytes, c)
			}
		}
	}
	fmt.Fprintf(w, "Status: %d in sync, %d drift, %d not persisted, %d reverting, %d failed.\n",
		counts[string(modules.InSync)], counts[string(modules.Drift)], counts[string(modules.NotPersisted)], counts[string(modules.Reverting)], counts["failed"])
}

type jsonState struct {
	Host       string              `json:"host"`
	Address    string              `json:"address"`
	State      string              `json:"state"` // in sync, drift, not persisted, reverting, failed
	Error      string              `json:"error,omitempty"`
	Hints      []string            `json:"hints,omitempty"`
	Changes    int                 `json:"changes"`
	Persist    string              `json:"persisted_differs,omitempty"`
	Generation *modules.Generation `json:"generation,omitempty"`
	DeadMan    *jsonDeadMan        `json:"deadman,omitempty"`
	Lock       *jsonLock           `json:"lock,omitempty"`
	Boot       string              `json:"boot,omitempty"`
	BootOK     bool                `json:"boot_loads_rules"`
	Drops      uint64              `json:"drops"`
	DropBytes  uint64              `json:"drop_bytes"`
	Counters   []jsonCounter       `json:"counters,omitempty"`
}

type jsonLock struct {
	Run      string    `json:"run"`
	Operator string    `json:"operator"`
	Since    time.Time `json:"since"`
	Expires  time.Time `json:"expires"`
}

type jsonDeadMan struct {
	Run    string `json:"run"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
}

type jsonCounter struct {
	Family  int    `json:"family"`
	Chain   string `json:"chain"`
	Policy  string `json:"policy,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// jsonStates is the document of a status.
func jsonStates(states []runner.HostState, detailed bool) jsonDoc {
	var doc jsonDoc
	for _, h := range states {
		j := jsonState{Host: h.Target.Label, Address: h.Target.Addr(), State: "failed"}
		if h.Err != nil {
			j.Error, j.Hints = h.Err.Error(), modules.Hints(h.Err)
			doc.States = append(doc.States, j)
			continue
		}
		s := h.State
		j.State, j.Changes, j.Persist, j.Generation = string(s.State), s.Changes, s.Persist, s.Generation
		if l := s.Lock; l != nil {
			j.Lock = &jsonLock{Run: l.Run, Operator: l.Operator, Since: l.Since, Expires: l.Expires}
		}
		j.Boot, j.BootOK, j.Drops, j.DropBytes = s.Boot, s.BootOK, s.Drops, s.DropBytes
		if d := s.DeadMan; d != nil {
			j.DeadMan = &jsonDeadMan{Run: d.Run, Kind: d.DeadMan, Status: string(d.Status)}
		}
		if detailed {
			for _, c := range s.Counters {
				j.Counters = append(j.Counters, jsonCounter{Family: int(c.Family), Chain: c.Chain, Policy: c.Policy, Rule: c.Rule, Packets: c.Packets, Bytes: c.Bytes})
			}
		}
		doc.States = append(doc.States, j)
	}
	return doc
}
