package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
)

// logsArgs are logs' arguments, parsed.
type logsArgs struct {
	remoteFlags
	host    string
	plan    string
	since   time.Duration
	follow  bool
	suggest bool
}

func parseLogs(c *command, args []string, std stdio) (*logsArgs, error) {
	a := &logsArgs{}
	fs := newFlagSet(c, std)
	a.remoteFlags.register(fs)
	fs.StringVar(&a.plan, "plan", "", "the plan (`PATH`) whose host labels HOST may be, and whose names name the peers")
	fs.DurationVar(&a.since, "since", 0, "only the drops of the last `DURATION` (default: since the host booted, as far as its kernel log goes back)")
	fs.BoolVar(&a.follow, "follow", false, "then print each new drop as it is logged, until interrupted")
	fs.BoolVar(&a.suggest, "suggest", false, "print allowlist entries for what was dropped (or, in audit mode, would have been), to paste into the plan")
	hosts, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(hosts) != 1 {
		return nil, modules.WithHint(errors.New("which host?"), "piwall logs pi-03")
	}
	a.host = hosts[0]
	if a.suggest && (a.follow || a.json) {
		return nil, errors.New("--suggest prints HCL once: not with --follow or --json")
	}
	return a, nil
}

// followEvery is how often logs --follow reads the log again.
const followEvery = 2 * time.Second

func runLogs(ctx context.Context, c *command, args []string, std stdio) error {
	a, err := parseLogs(c, args, std)
	if err != nil {
		return err
	}
	p, targets, err := lookupHosts([]string{a.host}, a.plan, &a.remoteFlags, std)
	if err != nil {
		return err
	}
	t := targets[0]
	r := newRemote(p, targets, &a.remoteFlags, nil)
	defer r.printStats(std.errOut)
	req := modules.FactsRequest{}
	if t.Host != nil {
		req.Names = modules.CheckRequest(t.Host).Names // expect_blocked's too: what a Pi tries and must not reach
	}
	every := time.Duration(0)
	if a.follow {
		every = followEvery
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
	}
	first := true
	var seen time.Duration // the stamp of the last drop printed, for --follow
	drops := modules.DropsScript(req.Paths, a.suggest)
	return r.fleet.Logs(ctx, t, req, drops, every, func(f *modules.Facts, out []byte) error {
		log, err := modules.ParseDrops(out, modules.SelfAddrs(f))
		if err != nil {
			return err
		}
		names := modules.NamesByAddr(f)
		if first {
			first = false
			groups := modules.SummarizeDrops(log, names, a.since, time.Now())
			if a.suggest {
				printSuggestion(std.out, t, groups)
				return nil
			}
			if a.json {
				if err := writeJSON(std.out, jsonDoc{Drops: jsonDrops(t, groups)}); err != nil {
					return err
				}
			} else {
				printDrops(std.out, t, groups, a.since)
			}
			if len(log.Drops) > 0 {
				seen = log.Drops[len(log.Drops)-1].At
			}
			return nil
		}
		boot := time.Now().Add(-log.Uptime)
		for _, d := range log.Drops {
			if d.At <= seen {
				continue
			}
			seen = d.At
			printDrop(std.out, d, names[d.Peer()], boot.Add(d.At))
		}
		return nil
	})
}

// printSuggestion is logs --suggest: allowlist entries, as HCL, under a
// comment that says where they come from.
func printSuggestion(w io.Writer, t inventory.Target, groups []modules.DropGroup) {
	hcl := modules.Suggest(groups)
	if hcl == "" {
		fmt.Fprintf(w, "# %s: nothing to suggest: no drop of tcp, udp or ping was logged.\n", t.Label)
		return
	}
	fmt.Fprintf(w, "# What %s tried, or was sent, that its allowlists do not allow, from its drop log:\n# paste what it needs into an allowlist, then piwall apply, then piwall check.\n%s", t.Label, hcl)
}

// printDrops is logs' human view: a table of the drops by direction,
// protocol, peer and port, most first, then a count.
func printDrops(w io.Writer, t inventory.Target, groups []modules.DropGroup, since time.Duration) {
	when := "since the host booted"
	if since > 0 {
		when = "in the last " + since.String()
	}
	if len(groups) == 0 {
		fmt.Fprintf(w, "%s: no drops logged %s (log_drops = true logs them).\n", t.Label, when)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\tPROTO\tPEER\tPORT\tCOUNT\tFIRST\tLAST")
	total := 0
	for _, g := range groups {
		total += g.Count
		dir := g.Direction
		if g.Audit {
			dir += " (audit)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", dir, g.Proto, peerWords(g.Peer, g.Name), portWords(g), g.Count,
			g.First.UTC().Format("15:04:05Z"), g.Last.UTC().Format("15:04:05Z"))
	}
	tw.Flush()
	fmt.Fprintf(w, "%s: %d drops logged %s, %d kinds. The LOG rules log 5 a minute at most: counts are of what was logged.\n", t.Label, total, when, len(groups))
}

func peerWords(a netip.Addr, name string) string {
	if name == "" {
		return a.String()
	}
	return name + " (" + a.String() + ")"
}

func portWords(g modules.DropGroup) string {
	switch g.Proto {
	case "icmp", "icmpv6":
		return "type " + fmt.Sprint(g.Port)
	case "tcp", "udp":
		return fmt.Sprint(g.Port)
	}
	return "-"
}

// printDrop is one new drop under --follow.
func printDrop(w io.Writer, d modules.Drop, name string, at time.Time) {
	port := fmt.Sprint(d.DPort)
	if d.Proto == "icmp" || d.Proto == "icmpv6" {
		port = "type " + port
	}
	dir := d.Direction
	if d.Audit {
		dir += " (audit)"
	}
	fmt.Fprintf(w, "%s %s %s %s %s\n", at.UTC().Format("15:04:05Z"), dir, d.Proto, peerWords(d.Peer(), name), port)
}

type jsonDropGroup struct {
	Host      string    `json:"host"`
	Direction string    `json:"direction"`
	Proto     string    `json:"proto"`
	Peer      string    `json:"peer"`
	Name      string    `json:"name,omitempty"`
	Port      int       `json:"port"`
	Count     int       `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Audit     bool      `json:"audit,omitempty"`
}

func jsonDrops(t inventory.Target, groups []modules.DropGroup) []jsonDropGroup {
	out := []jsonDropGroup{}
	for _, g := range groups {
		out = append(out, jsonDropGroup{Host: t.Label, Direction: g.Direction, Proto: g.Proto, Peer: g.Peer.String(), Name: g.Name,
			Port: int(g.Port), Count: g.Count, First: g.First.UTC(), Last: g.Last.UTC(), Audit: g.Audit})
	}
	return out
}
