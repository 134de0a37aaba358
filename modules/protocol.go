package modules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// What prepare and confirm print for piwall, read by the Parse functions
// below and written by the Format ones (for stand-ins of a host, such as
// runner/sim). These words are the protocol: they appear here and in
// scripts/*.sh, nowhere else.
const (
	sayInstalled = "installed"             // prepare installed iptables
	sayArmed     = "armed deadman="        // then "systemd", or "process PID"
	sayStaleLock = "stale-lock "           // then the lock taken over, its lines joined by spaces
	saySetAside  = "set-aside "            // then a rules file nothing loaded and the name it was moved to
	sayTested    = "tested "               // then the boot clock before and after the kernel's test of the new rules
	sayStarted   = "started"               // the applier is started: prepare's last word
	sayConfirmed = "confirmed generation=" // then the generation now current
	sayStatus    = "status="               // then the run's status
	sayLiveSaved = "live-is-saved="        // then yes or no
)

// The dead-man's kinds, as PrepareReport.DeadMan holds them.
const (
	DeadManSystemd = "systemd" // a systemd timer
	DeadManProcess = "process" // a process in a session of its own
)

// PrepareReport is what prepare said it did.
type PrepareReport struct {
	Installed bool   // iptables and netfilter-persistent were installed
	DeadMan   string // DeadManSystemd or DeadManProcess; "" if prepare did not say
	Started   bool   // the applier is started: the new rules go live at once
	// StaleLock is the lock that prepare took over, past its expiry: its
	// lines (run=..., operator=..., since=..., expires=...) joined by
	// spaces; "" when the lock was free.
	StaleLock string
	// SetAside are the rules files found with nothing installed to load
	// them, moved away before installing netfilter-persistent: each "FILE
	// → NEW NAME".
	SetAside []string
	// Tested is how long the kernel's test of the new rules took on the
	// host (iptables-restore --test, both families): about what the
	// applier's load of them takes. Zero when prepare did not say.
	Tested time.Duration
}

// ParsePrepare reads what prepare printed on its stdout. A prepare that
// did not say "started" did not start the applier, or its answer was cut
// short: that is an error, returned with what prepare did say. A dead-man
// of an unknown kind is an error too.
func ParsePrepare(stdout []byte) (PrepareReport, error) {
	var r PrepareReport
	for line := range strings.Lines(string(stdout)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == sayInstalled:
			r.Installed = true
		case line == sayStarted:
			r.Started = true
		case strings.HasPrefix(line, sayArmed):
			kind, _, _ := strings.Cut(strings.TrimPrefix(line, sayArmed), " ")
			if kind != DeadManSystemd && kind != DeadManProcess {
				return PrepareReport{}, fmt.Errorf("prepare: dead-man of unknown kind %q", kind)
			}
			r.DeadMan = kind
		case strings.HasPrefix(line, sayStaleLock):
			r.StaleLock = strings.TrimSpace(strings.TrimPrefix(line, sayStaleLock))
		case strings.HasPrefix(line, sayTested):
			from, to, _ := strings.Cut(strings.TrimPrefix(line, sayTested), " ")
			t0, err0 := parseUptime(from)
			t1, err1 := parseUptime(to)
			if err0 != nil || err1 != nil || t1 < t0 {
				return PrepareReport{}, fmt.Errorf("prepare: %q is not two times of the boot clock, in order", line)
			}
			r.Tested = t1 - t0
		case strings.HasPrefix(line, saySetAside):
			if from, to, ok := strings.Cut(strings.TrimPrefix(line, saySetAside), " "); ok {
				r.SetAside = append(r.SetAside, from+" → "+to)
			}
		}
	}
	if !r.Started {
		return r, errors.New("prepare did not say it started the applier")
	}
	return r, nil
}

// FormatPrepare prints r as prepare does.
func FormatPrepare(r PrepareReport) []byte {
	var b strings.Builder
	if r.StaleLock != "" {
		b.WriteString(sayStaleLock + r.StaleLock + " \n")
	}
	if r.Installed {
		b.WriteString(sayInstalled + "\n")
	}
	if r.Tested > 0 {
		fmt.Fprintf(&b, "%s0.00 %s\n", sayTested, formatUptime(r.Tested))
	}
	if r.DeadMan != "" {
		b.WriteString(sayArmed + r.DeadMan + "\n")
	}
	if r.Started {
		b.WriteString(sayStarted + "\n")
	}
	return []byte(b.String())
}

// ParseConfirm reads what confirm printed on its stdout: the generation now
// current. Without it, or with a number that is not a positive integer,
// confirm did not confirm, whatever its exit status.
func ParseConfirm(stdout []byte) (generation int, err error) {
	for line := range strings.Lines(string(stdout)) {
		rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), sayConfirmed)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || strings.HasPrefix(rest, "+") {
			return 0, fmt.Errorf("confirm: generation %q is not a positive integer", rest)
		}
		return n, nil
	}
	return 0, fmt.Errorf("confirm did not say which generation it recorded (%q)", strings.TrimSpace(string(stdout)))
}

// FormatConfirm prints what confirm prints once generation is recorded.
func FormatConfirm(generation int) []byte {
	return []byte(sayConfirmed + strconv.Itoa(generation) + "\n")
}

// Status is where a run stands on the host, as its status file says.
type Status string

const (
	StatusPending   Status = "pending"   // the applier has not begun
	StatusApplying  Status = "applying"  // the applier is loading the new rules
	StatusApplied   Status = "applied"   // the new rules are live, not yet confirmed
	StatusConfirmed Status = "confirmed" // confirmed and persisted
	StatusReverted  Status = "reverted"  // the dead-man put the saved rules back
	StatusFailed    Status = "failed"    // the applier could not load the new rules
)

// RunStatus is what confirm's status mode printed.
type RunStatus struct {
	Status Status
	// Detail is what failed, for StatusFailed: "iptables-restore" or
	// "ip6tables-restore".
	Detail string
	// LiveIsSaved says the live rules are those saved before the run: the
	// old ones are back.
	LiveIsSaved bool
}

// ParseStatus reads what confirm's status mode printed on its stdout.
func ParseStatus(stdout []byte) (RunStatus, error) {
	var st RunStatus
	var sawStatus, sawLive bool
	for line := range strings.Lines(string(stdout)) {
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, sayStatus); ok {
			word, detail, _ := strings.Cut(rest, " ")
			switch s := Status(word); s {
			case StatusPending, StatusApplying, StatusApplied, StatusConfirmed, StatusReverted, StatusFailed:
				st.Status, st.Detail = s, detail
			default:
				return RunStatus{}, fmt.Errorf("status: unknown status %q", rest)
			}
			sawStatus = true
		} else if rest, ok := strings.CutPrefix(line, sayLiveSaved); ok {
			switch rest {
			case "yes":
				st.LiveIsSaved = true
			case "no":
			default:
				return RunStatus{}, fmt.Errorf("status: live-is-saved is %q, want yes or no", rest)
			}
			sawLive = true
		}
	}
	if !sawStatus || !sawLive {
		return RunStatus{}, fmt.Errorf("status: the run's status is missing from %q", strings.TrimSpace(string(stdout)))
	}
	return st, nil
}

// FormatStatus prints st as confirm's status mode does.
func FormatStatus(st RunStatus) []byte {
	s := string(st.Status)
	if st.Detail != "" {
		s += " " + st.Detail
	}
	live := "no"
	if st.LiveIsSaved {
		live = "yes"
	}
	return []byte(sayStatus + s + "\n" + sayLiveSaved + live + "\n")
}

// parseUptime reads a time of the boot clock as /proc/uptime prints it:
// seconds, with a fraction.
func parseUptime(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 10 || len(frac) > 9 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a time of the boot clock", s)
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	d := time.Duration(w) * time.Second
	scale := time.Second
	for _, c := range frac {
		scale /= 10
		d += time.Duration(c-'0') * scale
	}
	return d, nil
}

// formatUptime prints d as /proc/uptime does, to the hundredth of a
// second, rounded up.
func formatUptime(d time.Duration) string {
	cs := (d + 10*time.Millisecond - 1) / (10 * time.Millisecond)
	return fmt.Sprintf("%d.%02d", cs/100, cs%100)
}
