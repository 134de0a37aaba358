package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
)

// HostCheck is one host's check: what each probe saw, or why the host
// could not be checked.
type HostCheck struct {
	Target   inventory.Target
	Findings []modules.Finding // nil when Err is set
	Err      error
	Duration time.Duration // the whole host: connection, facts, probes
}

// Failed counts the findings that did not hold; skipped ones are not
// failures.
func (h HostCheck) Failed() int {
	n := 0
	for _, f := range h.Findings {
		if !f.OK && !f.Skipped {
			n++
		}
	}
	return n
}

// OK reports whether the host was checked and every expectation held.
func (h HostCheck) OK() bool { return h.Err == nil && h.Failed() == 0 }

// CheckWant says what a check wants of each host: the facts to read and
// the check they lead to.
type CheckWant struct {
	Request func(t inventory.Target) modules.FactsRequest
	Check   func(t inventory.Target, f *modules.Facts) (*modules.Check, error)
	Paths   modules.Paths // where the host keeps things: the zero value but in tests
}

// Check checks every target, at most Parallel at once, changing nothing:
// one connection per host, the facts command, then the check script over
// the same connection, its probes all at once on the host.
func (fl *Fleet) Check(ctx context.Context, targets []inventory.Target, want CheckWant) []HostCheck {
	out := make([]HostCheck, len(targets))
	for i, t := range targets {
		out[i] = HostCheck{Target: t, Err: context.Canceled} // until checked
	}
	each(0, len(targets), fl.Parallel, func(int) bool { return ctx.Err() == nil }, func(i int) {
		t := targets[i]
		defer fl.emit(t.Label, HostDone, "")
		start := time.Now()
		findings, err := fl.checkHost(ctx, t, want)
		out[i] = HostCheck{Target: t, Findings: findings, Err: err, Duration: time.Since(start)}
	})
	return out
}

func (fl *Fleet) checkHost(ctx context.Context, t inventory.Target, want CheckWant) ([]modules.Finding, error) {
	s := fl.session(t)
	f, conn, err := s.gather(ctx, want.Request(t))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c, err := want.Check(t, f)
	if err != nil {
		return nil, s.fail("check", err)
	}
	s.step("probing")
	// Every probe is bounded on the host; the margin is for a host slow
	// to start them, past which it fails alone.
	pctx, cancel := context.WithTimeout(ctx, modules.ProbeTimeout+30*time.Second)
	defer cancel()
	res, err := conn.Run(pctx, modules.CheckCommand(t.Sudo), []byte(c.Script(want.Paths)))
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("the probes did not finish within %v", modules.ProbeTimeout+30*time.Second)
	}
	if err == nil && res.Status != 0 {
		err = sudoHint(&CommandError{Command: "check", Status: res.Status, Stderr: string(res.Stderr)}, t.User)
		if res.Status == 127 {
			err = modules.WithHint(err, "the probes need bash, timeout, dd and od on the host (ping for ping probes)")
		}
	}
	if err != nil {
		return nil, s.fail("check", err)
	}
	findings, err := c.Judge(res.Stdout)
	if err != nil {
		return nil, s.fail("check", err)
	}
	return findings, nil
}

// HostState is one host's status, or why it could not be read.
type HostState struct {
	Target inventory.Target
	State  *modules.HostState // nil when Err is set
	Err    error
}

// Status reads every target's state, at most Parallel at once, changing
// nothing: one connection and one command per host, its facts with the
// runs, counters, history and persisted rules, compared with the plan as
// want's change set says.
func (fl *Fleet) Status(ctx context.Context, targets []inventory.Target, want Want) []HostState {
	req := want.Request
	want.Request = func(t inventory.Target) modules.FactsRequest {
		r := modules.FactsRequest{}
		if req != nil {
			r = req(t)
		}
		r.Status, r.History, r.PersistedRules = true, true, true
		return r
	}
	c := fl.Plan(ctx, targets, want, false)
	out := make([]HostState, len(c.Hosts))
	for i, h := range c.Hosts {
		out[i] = HostState{Target: h.Target, Err: h.Err}
		if h.Err != nil {
			continue
		}
		st, err := modules.NewState(h.ChangeSet)
		if err != nil {
			out[i].Err = &StepError{Host: h.Target.Label, Step: "status", Err: err}
			continue
		}
		out[i].State = st
	}
	return out
}

// Logs reads a host's facts (req) and then its drop log (the script drops,
// from modules.DropsScript) over the same connection, and calls fn with
// both. With every above zero it reads the
// log again each time every has passed, calling fn with the whole log each
// time, until ctx ends or fn returns an error; ctx ending is no error.
func (fl *Fleet) Logs(ctx context.Context, t inventory.Target, req modules.FactsRequest, drops string, every time.Duration, fn func(f *modules.Facts, out []byte) error) error {
	s := fl.session(t)
	f, conn, err := s.gather(ctx, req)
	if err != nil {
		return err
	}
	defer conn.Close()
	script := []byte(drops)
	for {
		s.step("reading the drop log")
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		res, err := conn.Run(rctx, modules.DropsCommand(t.Sudo), script)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && res.Status != 0 {
			err = sudoHint(&CommandError{Command: "drops", Status: res.Status, Stderr: string(res.Stderr)}, t.User)
		}
		if err != nil {
			return s.fail("logs", err)
		}
		if err := fn(f, res.Stdout); err != nil {
			return s.fail("logs", err)
		}
		if every <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
