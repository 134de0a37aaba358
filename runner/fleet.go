package runner

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
)

// Fleet does piwall's work over many hosts: it reads each host's facts and
// computes its change set (Plan), then carries the change sets out in
// rollout order (Apply). An apply and a rollback are the same run with
// another desired state (Want), so every rollout setting, event and
// outcome means the same for both.
type Fleet struct {
	Dialer   Dialer
	Parallel int     // hosts read or changed at once; at least 1
	Rollout  Rollout // the order of Apply; its Parallel is ignored for Parallel
	// Events, when set, receives what happens on each host as it happens.
	// It is called from many goroutines at once.
	Events func(Event)
	// KeepOpen is how many of the connections Plan reads facts over it
	// keeps open for Apply, when asked to keep them; zero: Parallel.
	KeepOpen int
	// Fault, when set, is called with a host's label at the named points
	// of its apply (FaultPoint), from that host's goroutine: the fault
	// tests kill piwall there, or change the host meanwhile. Nil in every
	// normal run.
	Fault func(host string, p FaultPoint)

	// FactsTimeout is how long a host may take to answer the facts
	// command (names resolved on a slow link, a busy SD card) before it
	// fails alone; zero: DefaultFactsTimeout.
	FactsTimeout time.Duration

	// Stats, when set, counts each host's uploads; the Dialer counts its
	// connections, commands and round trips into the same Stats.
	Stats *Stats

	timing timing // zero: the protocol's own delays (tests shorten them)
}

// DefaultFactsTimeout is generous, but a stuck host must not hold up the
// whole gather.
const DefaultFactsTimeout = 2 * time.Minute

// Want says what a run wants of each host: the facts to read beside the
// usual ones, and the change set they lead to.
type Want struct {
	Request   func(t inventory.Target) modules.FactsRequest
	ChangeSet func(t inventory.Target, f *modules.Facts) (*modules.ChangeSet, error)
}

// Event is one thing that happened on a host during a run.
type Event struct {
	Host string
	Kind EventKind
	Text string // the step that started, or the warning
}

// EventKind tells events apart.
type EventKind int

const (
	StepStarted EventKind = iota // Text names the step
	Warning                      // Text is the warning; the host's outcome carries it too
	HostDone                     // the host is done with in this phase
)

// FaultPoint names a point of an apply where the fault tests stop piwall.
type FaultPoint string

const (
	FaultPrepareStarts FaultPoint = "prepare-starts" // prepare's command is about to run
	FaultPrepared      FaultPoint = "prepared"       // prepare's command has returned
	FaultConfirmStarts FaultPoint = "confirm-starts" // the confirm command is about to run
)

// Changes are a fleet's change sets, one per host in the targets' order.
type Changes struct {
	Hosts []HostChanges
}

// HostChanges is one host's change set, or why there is none.
type HostChanges struct {
	Target    inventory.Target
	ChangeSet *modules.ChangeSet // nil when Err is set
	Err       error              // reading the facts or computing the change set failed
	conn      Conn               // the connection the facts came from, kept for Apply
}

// PlanStatus is what a plan found for a host.
type PlanStatus string

const (
	PlanChanges   PlanStatus = "changes"
	PlanUnchanged PlanStatus = "unchanged"
	PlanFailed    PlanStatus = "failed"
)

// Status classifies the host: failed, unchanged or with changes. It is the
// one place that decides; the views print it.
func (h HostChanges) Status() PlanStatus {
	switch {
	case h.Err != nil:
		return PlanFailed
	case h.ChangeSet.Unchanged():
		return PlanUnchanged
	}
	return PlanChanges
}

// Count returns how many hosts of each status the change sets hold.
func (c *Changes) Count() map[PlanStatus]int {
	n := map[PlanStatus]int{}
	for _, h := range c.Hosts {
		n[h.Status()]++
	}
	return n
}

// Close closes the connections Plan kept and Apply did not use.
func (c *Changes) Close() {
	for i := range c.Hosts {
		if conn := c.Hosts[i].conn; conn != nil {
			conn.Close()
			c.Hosts[i].conn = nil
		}
	}
}

func (fl *Fleet) emit(host string, kind EventKind, text string) {
	if fl.Events != nil {
		fl.Events(Event{Host: host, Kind: kind, Text: text})
	}
}

func (fl *Fleet) session(t inventory.Target) *session {
	return &session{Dialer: fl.Dialer, Target: t, fleet: fl}
}

// Plan reads every target's facts, at most Parallel hosts at once, and
// computes each one's change set. With keep, the connection of each host
// with changes stays open for Apply (the caller closes what Apply does not
// use with Changes.Close), up to KeepOpen connections: Apply connects
// again to the others; without, every connection is closed.
func (fl *Fleet) Plan(ctx context.Context, targets []inventory.Target, want Want, keep bool) *Changes {
	c := &Changes{Hosts: make([]HostChanges, len(targets))}
	var kept atomic.Int64
	keepOpen := int64(fl.keepOpen())
	for i, t := range targets {
		c.Hosts[i] = HostChanges{Target: t, Err: context.Canceled} // until read
	}
	each(0, len(targets), fl.Parallel, func(int) bool { return ctx.Err() == nil }, func(i int) {
		t := targets[i]
		defer fl.emit(t.Label, HostDone, "")
		var req modules.FactsRequest
		if want.Request != nil {
			req = want.Request(t)
		}
		f, conn, err := fl.session(t).gather(ctx, req)
		h := HostChanges{Target: t, Err: err, conn: conn}
		if err == nil {
			if h.ChangeSet, err = want.ChangeSet(t, f); err != nil {
				h.Err = &StepError{Host: t.Label, Step: "plan", Err: err}
			}
		}
		if h.conn != nil && (!keep || h.Status() != PlanChanges || kept.Add(1) > keepOpen) {
			h.conn.Close()
			h.conn = nil
		}
		c.Hosts[i] = h
	})
	return c
}

// keepOpen is how many connections Plan keeps for Apply: as many as the
// hosts Apply starts with, which then need no new handshake; the others
// connect again when their turn comes. An open connection costs the
// controller a file descriptor and some 60 KiB (buffers, goroutines), and
// a fleet of 10,000 hosts all kept open until the last ones' turn hits the
// common limit of open files (ulimit -n) and most of a GB; a connection
// kept for minutes may also be dropped by a NAT on the way.
func (fl *Fleet) keepOpen() int {
	if fl.KeepOpen > 0 {
		return fl.KeepOpen
	}
	return max(fl.Parallel, 1)
}

// Facts reads one host's facts and closes the connection.
func (fl *Fleet) Facts(ctx context.Context, t inventory.Target, req modules.FactsRequest) (*modules.Facts, error) {
	f, conn, err := fl.session(t).gather(ctx, req)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return f, nil
}

// ApplyOptions are what an apply may do beyond the change sets.
type ApplyOptions struct {
	Force    bool   // apply rulesets that fail the static lockout check
	Operator string // user@machine, recorded on the host
	Kind     string // "apply" or "rollback", recorded on the host
	// UntilReboot applies to hosts whose persisted rules are gone at the
	// next boot (an overlay or tmpfs root), saying so in the outcome.
	UntilReboot bool
}

// Apply carries out the change sets in rollout order and returns every
// host's outcome, in the hosts' order: a host whose plan failed is Failed,
// one with nothing to change Unchanged, and the others as their apply
// ended (Skipped when the rollout stopped before them).
func (fl *Fleet) Apply(ctx context.Context, c *Changes, opt ApplyOptions) []Outcome {
	outs := make([]Outcome, len(c.Hosts))
	var changing []int
	for i, h := range c.Hosts {
		o := Outcome{Host: h.Target.Label, Changes: h.ChangeSet}
		switch h.Status() {
		case PlanFailed:
			o.Status, o.Err, o.Hints = Failed, h.Err, modules.Hints(h.Err)
		case PlanUnchanged:
			o.Status = Unchanged
		default:
			changing = append(changing, i)
		}
		outs[i] = o
	}
	ro := fl.Rollout
	ro.Parallel = fl.Parallel
	done := ro.Run(ctx, len(changing), func(ctx context.Context, k int) Outcome {
		h := &c.Hosts[changing[k]]
		conn := h.conn
		h.conn = nil // the apply closes it
		defer fl.emit(h.Target.Label, HostDone, "")
		if conn == nil { // Plan kept no connection for it (KeepOpen)
			s := fl.session(h.Target)
			s.step("connecting")
			start := time.Now()
			var err error
			if conn, err = fl.Dialer.Dial(ctx, h.Target); err != nil {
				err = s.fail("connect", err)
				return Outcome{Status: Failed, Err: err, Hints: modules.Hints(err), Duration: time.Since(start)}
			}
		}
		return fl.session(h.Target).run(ctx, conn, h.ChangeSet, opt)
	})
	for k, o := range done {
		h := c.Hosts[changing[k]]
		// A skipped host comes back from the rollout without its name and
		// change set; the outcome table shows what it would have changed.
		o.Host, o.Changes = h.Target.Label, h.ChangeSet
		outs[changing[k]] = o
	}
	return outs
}

// timing holds the delays of the apply protocol; tests shorten them.
// A zero field takes the protocol's own value.
type timing struct {
	confirmFirst    time.Duration // the first confirm's wait; 0: firstConfirmWait's
	backoff         time.Duration // between confirm attempts (doubling once)
	attempt         time.Duration // one new connection and its command
	revertGrace     time.Duration // after the dead-man's time, before checking the revert
	revertPoll      time.Duration // how long the revert is checked for
	revertPollEvery time.Duration
}

func (t timing) orDefaults() timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.backoff, time.Second)
	// A frozen connection is dropped sooner, when its keepalives go
	// unanswered.
	def(&t.attempt, 20*time.Second)
	def(&t.revertGrace, 2*time.Second)
	def(&t.revertPoll, 30*time.Second)
	def(&t.revertPollEvery, time.Second)
	return t
}
