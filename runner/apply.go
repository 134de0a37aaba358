package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
)

// Outcome is how one host's run ended.
type Outcome struct {
	Host       string
	Status     HostStatus // unchanged, applied, reverted, failed, skipped
	Generation int        // the generation now current, when applied
	Err        error      // why it failed or reverted
	Hints      []string   // what to do next, for Err
	Warnings   []string   // what the operator should know, even of a host that succeeded
	Changes    *modules.ChangeSet
	Duration   time.Duration
}

// HostStatus is how a host's run ended, in the words of the summary.
type HostStatus string

const (
	Unchanged HostStatus = "unchanged"
	Applied   HostStatus = "applied"
	Reverted  HostStatus = "reverted"
	Failed    HostStatus = "failed"
	Skipped   HostStatus = "skipped"
)

// CountOutcomes counts the outcomes of each status.
func CountOutcomes(outs []Outcome) map[HostStatus]int {
	n := map[HostStatus]int{}
	for _, o := range outs {
		n[o.Status]++
	}
	return n
}

// StepError is a failed step on a host, shaped like io/fs.PathError: which
// host, which step, and why.
type StepError struct {
	Host string
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Host + ": " + e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// session is what a run on one host needs: the fleet it belongs to gives
// its dialer, its events, its fault points and its timing.
type session struct {
	Dialer Dialer
	Target inventory.Target
	fleet  *Fleet
}

func (s *session) step(name string) { s.fleet.emit(s.Target.Label, StepStarted, name) }

func (s *session) fault(p FaultPoint) {
	if s.fleet.Fault != nil {
		s.fleet.Fault(s.Target.Label, p)
	}
}

func (s *session) fail(step string, err error) error {
	return &StepError{Host: s.Target.Label, Step: step, Err: err}
}

// gather opens a connection and reads the host's facts in one command:
// the names to resolve on the host and the generations to read come with
// it. The connection stays open for the caller.
func (s *session) gather(ctx context.Context, req modules.FactsRequest) (*modules.Facts, Conn, error) {
	s.step("connecting")
	c, err := s.Dialer.Dial(ctx, s.Target)
	if err != nil {
		return nil, nil, s.fail("connect", err)
	}
	s.step("reading facts")
	marker := "==>piwall-" + randomHex(6)
	limit := s.fleet.FactsTimeout
	if limit <= 0 {
		limit = DefaultFactsTimeout
	}
	fctx, cancel := context.WithTimeout(ctx, limit)
	res, err := c.Run(fctx, modules.FactsCommand(s.Target.Sudo), []byte(modules.FactsScript(marker, req)))
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = modules.WithHint(fmt.Errorf("the facts command did not answer within %v", limit),
			"the host is stuck or very slow (a full SD card, a hung apt, a name that does not resolve): log in and look (uptime, df, ps)")
	}
	if err == nil && res.Status != 0 {
		err = sudoHint(&CommandError{Command: "facts", Status: res.Status, Stderr: string(res.Stderr)}, s.Target.User)
	}
	if err != nil {
		c.Close()
		return nil, nil, s.fail("facts", err)
	}
	f, err := modules.ParseFacts(string(res.Stdout), marker)
	if err != nil {
		c.Close()
		return nil, nil, s.fail("facts", err)
	}
	cnameChains(ctx, c, f)
	return f, c, nil
}

// sudoHint names the likely mistake when sudo asks for a password.
func sudoHint(err *CommandError, user string) error {
	if strings.Contains(err.Stderr, "password is required") || strings.Contains(err.Stderr, "a terminal is required") {
		return modules.WithHint(err, fmt.Sprintf("piwall needs passwordless sudo for %s: a line '%s ALL=(ALL) NOPASSWD:ALL' in /etc/sudoers.d/, or connect as root", user, user))
	}
	return err
}

// run carries out a change set on the host, over a, the connection its
// facts came from. It follows the protocol of modules.Change: prepare,
// the run's files on its stdin (unpack, lock, install, save, test, arm,
// start the applier), then, over
// a new connection, confirm. It never waits on a after the applier starts:
// the new rules may freeze it. The outcome's hints are those of its error
// and of the step that failed.
func (s *session) run(ctx context.Context, a Conn, cs *modules.ChangeSet, opt ApplyOptions) Outcome {
	start := time.Now()
	out := s.apply(ctx, a, cs, opt)
	out.Host, out.Changes, out.Duration = s.Target.Label, cs, time.Since(start)
	out.Hints = append(modules.Hints(out.Err), out.Hints...)
	return out
}

func (s *session) apply(ctx context.Context, a Conn, cs *modules.ChangeSet, opt ApplyOptions) Outcome {
	if cs.Unchanged() {
		a.Close()
		return Outcome{Status: Unchanged}
	}
	if cs.Lockout != nil && !opt.Force {
		a.Close()
		return Outcome{Status: Failed, Err: s.fail("lockout check", cs.Lockout)}
	}
	if cs.Ephemeral != "" && !opt.UntilReboot {
		a.Close()
		return Outcome{Status: Failed, Err: s.fail("persistence check", modules.WithHint(errors.New(cs.Ephemeral),
			"--until-reboot applies anyway, the rules lasting until the next boot; or make the root writable for good (raspi-config: Performance Options, Overlay File System)"))}
	}
	revert := s.Target.RevertAfter
	ch := &modules.Change{
		Run:   randomHex(8),
		NewV4: cs.Desired.V4.Text(), NewV6: cs.Desired.V6.Text(), Foreign: cs.Foreign.Text(),
		RevertAfter: revert, Install: cs.Install, EnableRestore: cs.EnableRestore, RulesInert: cs.RulesInert,
		Operator: opt.Operator, Source: cs.Source, Kind: opt.Kind,
		ExpectV4: cs.ExpectV4, ExpectV6: cs.ExpectV6,
		Sets: cs.Sets, Names: cs.NamesConf,
	}
	s.step("preparing")
	// apt may take minutes on a slow Pi; the rest takes a second. The host
	// gives up at PrepareLimit; its answer gets a minute more.
	pctx, cancel := context.WithTimeout(ctx, modules.PrepareLimit+time.Minute)
	s.fault(FaultPrepareStarts)
	if s.fleet.Stats != nil {
		s.fleet.Stats.Host(s.Target.Label).Uploads.Add(1)
	}
	start := time.Now()
	res, err := a.Run(pctx, ch.PrepareCommand(s.Target.Sudo), ch.Archive())
	cancel()
	armedAt := time.Now()
	took, rtt := armedAt.Sub(start), a.RTT()
	s.fault(FaultPrepared)
	// Whatever happened, the first connection is done with: close it
	// without waiting, it may be frozen.
	go a.Close()
	var warnings []string
	// A prepare whose answer was cut short, or that failed, says less;
	// what it did say still counts.
	report, _ := modules.ParsePrepare(res.Stdout)
	if report.StaleLock != "" {
		warnings = append(warnings, "took over a stale lock: "+report.StaleLock)
	}
	for _, f := range report.SetAside {
		warnings = append(warnings, "a rules file that nothing loaded was set aside before installing netfilter-persistent, which would have loaded it: "+f)
	}
	for _, w := range warnings {
		s.fleet.emit(s.Target.Label, Warning, w)
	}
	if err == nil && res.Status == modules.ExitUnpack {
		return Outcome{Status: Failed, Err: s.fail("upload", modules.WithHint(
			fmt.Errorf("the host could not unpack the run's files into %s: %s", ch.UploadDir(), strings.TrimSpace(string(res.Stderr))),
			"check that /tmp on the host is writable and has room (df -h /tmp); nothing was changed"))}
	}
	if err == nil && res.Status != 0 {
		return Outcome{Status: Failed, Err: s.fail("prepare", prepareError(res, s.Target.User)), Warnings: warnings}
	}
	// A prepare whose answer was lost may have armed and applied: the new
	// connection finds out.
	first := s.fleet.timing.confirmFirst
	if first == 0 {
		first = firstConfirmWait(report.Tested, took, rtt)
	}
	out := s.confirm(ctx, ch, armedAt, first, rtt)
	if out.Status == Applied && cs.Ephemeral != "" {
		warnings = append(warnings, "applied until the next boot only: "+cs.Ephemeral)
	}
	out.Warnings = append(warnings, out.Warnings...)
	return out
}

func prepareError(res Result, user string) error {
	stderr := strings.TrimSpace(string(res.Stderr))
	switch res.Status {
	case modules.ExitLocked:
		return modules.WithHint(fmt.Errorf("another run holds the lock: %s", strings.Join(strings.Fields(stderr), " ")),
			"wait for that run, or its lock's expiry; if no run is under way (its controller crashed) and it must go now: sudo rm /var/lib/piwall/lock on the host")
	case modules.ExitDrift:
		return modules.WithHint(fmt.Errorf("the host's rules changed since the plan: %s", stderr), "run piwall plan again")
	case modules.ExitTestFailed:
		return fmt.Errorf("the host's iptables refused the new rules: %s", stderr)
	}
	return sudoHint(&CommandError{Command: "prepare", Status: res.Status, Stderr: stderr}, user)
}

// applierPoll is how often the applier looks whether prepare has ended.
const applierPoll = 50 * time.Millisecond

// firstConfirmWait is how long after prepare's answer the first new
// connection is opened: so that its first packet reaches the host just
// after the new rules went live. The applier sees prepare end, waits
// modules.ApplyDelay and loads the rules, which takes about what the
// kernel's test of them took in prepare (tested), given twice over and a
// margin: a connection that comes too early costs a whole new one, one
// late by a little costs that little. Prepare's answer left the host half
// a round trip before it arrived, and the connection's first packet
// reaches it half a round trip after it leaves: the wait is a round trip
// (rtt) shorter. A prepare that did not say how long its test took is
// judged by how long it took as a whole: a busy host, slow to prepare, is
// slow to load the rules too (a prepare that installed packages says
// little, hence the cap).
func firstConfirmWait(tested, prepareTook, rtt time.Duration) time.Duration {
	load := 2*tested + 50*time.Millisecond
	if tested == 0 {
		load = max(400*time.Millisecond, min(prepareTook/2, 1500*time.Millisecond))
	}
	return max(0, applierPoll+modules.ApplyDelay+load-rtt)
}

// confirm opens new connections, the first after the wait first, until
// one, opened after the new rules went live, confirms them, or the
// dead-man's time is nearly up. Then, if none did, it waits for the revert
// and checks the old rules are back. rtt is the round-trip time measured
// to the host, which confirm's proof takes into account.
func (s *session) confirm(ctx context.Context, ch *modules.Change, armedAt time.Time, first, rtt time.Duration) Outcome {
	s.step("confirming over a new connection")
	tm := s.fleet.timing.orDefaults()
	revertAt := armedAt.Add(ch.RevertAfter)
	// Leave the confirmation time to finish before the dead-man fires.
	deadline := revertAt.Add(-min(5*time.Second, ch.RevertAfter/4))
	var lastErr error
	// note keeps an attempt's error for the report, unless the deadline
	// below cut that attempt short: the error before it says more.
	note := func(err error) {
		if lastErr == nil || !errors.Is(err, context.DeadlineExceeded) || time.Now().Before(deadline) {
			lastErr = err
		}
	}
	// A connection that comes too early is refused by confirm, and the
	// next follows at once. A connection opened while the rules go live
	// may be caught half-way and freeze: it is dropped as soon as it stops
	// answering keepalives, while a slow one (a busy host) is given time;
	// the next waits longer.
	backoff := tm.backoff
	for wait := first; time.Now().Add(wait).Before(deadline); {
		select {
		case <-ctx.Done():
			return Outcome{Status: Failed, Err: s.fail("confirm", ctx.Err())}
		case <-time.After(wait):
		}
		wait, backoff = backoff, min(backoff*2, 2*tm.backoff)
		dctx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(tm.attempt)))
		b, err := s.Dialer.Dial(dctx, s.Target)
		if err != nil {
			cancel()
			note(err)
			continue
		}
		s.fault(FaultConfirmStarts)
		res, err := b.Run(dctx, ch.ConfirmCommand(s.Target.Sudo, rtt), nil)
		cancel()
		go b.Close()
		switch {
		case err != nil:
			note(err)
			continue
		case res.Status == 0:
			gen, err := modules.ParseConfirm(res.Stdout)
			if err != nil {
				// Confirmed and persisted, but what it said is not what
				// confirm prints: say so rather than guess a number.
				return Outcome{Status: Applied, Warnings: []string{fmt.Sprintf("confirm's answer names no generation: %v", err)}}
			}
			return Outcome{Status: Applied, Generation: gen}
		case res.Status == modules.ExitNotNew:
			lastErr = errors.New("the new connection predates the new rules")
			wait = 0 // the rules were live when confirm said so: the next one is newer
			continue
		case res.Status == modules.ExitPersistFailed:
			// The rules work but cannot be kept: the dead-man, still
			// armed, puts the old ones back.
			return s.awaitRevert(ctx, ch, revertAt,
				fmt.Errorf("the host could not save the new rules (%s); it reverts at %s", strings.TrimSpace(string(res.Stderr)), revertAt.Format("15:04:05")),
				"check that /etc/iptables is writable and the disk has room (df, mount): on a read-only or full root no rules survive a reboot")
		case res.Status == modules.ExitApplyFailed:
			return Outcome{Status: Failed, Err: s.fail("apply", fmt.Errorf("the host could not load the new rules: %s; the old ones are back", strings.TrimSpace(string(res.Stderr))))}
		default:
			lastErr = &CommandError{Command: "confirm", Status: res.Status, Stderr: string(res.Stderr)}
		}
	}
	return s.awaitRevert(ctx, ch, revertAt,
		fmt.Errorf("no new connection confirmed the new rules (last: %v); the host reverts at %s", lastErr, revertAt.Format("15:04:05")),
		"the plan must admit a new SSH connection from this machine to the host; check the inbound entries and the lockout check's warning")
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// awaitRevert reports the host as reverting, waits for its dead-man, and
// checks over a new connection that the old rules are back.
func (s *session) awaitRevert(ctx context.Context, ch *modules.Change, revertAt time.Time, cause error, hint string) Outcome {
	tm := s.fleet.timing.orDefaults()
	s.step("reverting at " + revertAt.Format("15:04:05"))
	select {
	case <-ctx.Done():
		return Outcome{Status: Failed, Err: s.fail("confirm", cause), Hints: []string{hint}}
	case <-time.After(time.Until(revertAt.Add(tm.revertGrace))):
	}
	until := time.Now().Add(tm.revertPoll)
	for time.Now().Before(until) {
		dctx, cancel := context.WithTimeout(ctx, tm.attempt/2)
		c, err := s.Dialer.Dial(dctx, s.Target)
		if err == nil {
			res, rerr := c.Run(dctx, ch.StatusCommand(s.Target.Sudo), nil)
			go c.Close()
			cancel()
			if rerr == nil && res.Status == 0 {
				st, perr := modules.ParseStatus(res.Stdout)
				if perr == nil && st.Status == modules.StatusReverted && st.LiveIsSaved {
					return Outcome{Status: Reverted, Err: s.fail("confirm", cause), Hints: []string{hint}}
				}
				if perr == nil && st.Status == modules.StatusConfirmed {
					return Outcome{Status: Applied} // a confirm we lost the answer to
				}
			}
		} else {
			cancel()
		}
		select {
		case <-ctx.Done():
			return Outcome{Status: Failed, Err: s.fail("confirm", cause), Hints: []string{hint}}
		case <-time.After(tm.revertPollEvery):
		}
	}
	return Outcome{Status: Failed, Err: s.fail("revert", fmt.Errorf("%v; and the host is still unreachable after its revert time", cause)),
		Hints: []string{"check the host from its console: piwall's dead-man should have restored its old rules"}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
