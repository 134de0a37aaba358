//go:build linux

package lab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Proc names one process the lab started. A pid alone may be reused by an
// unrelated process after a crash; the pid and its start time together may not,
// so the lab only ever signals a process whose start time still matches.
type Proc struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"` // field 22 of /proc/PID/stat, in clock ticks since boot
}

// procOf records a running process.
func procOf(pid int) (Proc, error) {
	st, err := readStat(pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{Pid: pid, Start: st.start}, nil
}

// alive reports whether p is still the process it was and has not exited.
func (p Proc) alive() bool {
	st, err := readStat(p.Pid)
	return err == nil && st.start == p.Start && st.state != 'Z' && st.state != 'X'
}

// kill sends SIGKILL to p if it is still the process it was.
func (p Proc) kill() {
	if p.alive() {
		unix.Kill(p.Pid, unix.SIGKILL)
	}
}

type stat struct {
	state byte
	start uint64
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(b))
}

// parseStat reads the state and start time from a /proc/PID/stat line. The
// command name in parentheses may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(s string) (stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, errors.New("malformed /proc stat: too few fields")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("malformed /proc stat start time: %w", err)
	}
	return stat{state: f[0][0], start: start}, nil
}

// waitGone waits until none of procs is alive, or the timeout passes.
func waitGone(procs []Proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, p := range procs {
			if p.alive() {
				left = append(left, strconv.Itoa(p.Pid))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still running after SIGKILL: %s", strings.Join(left, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
