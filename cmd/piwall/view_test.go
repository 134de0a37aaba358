package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/runner"
)

func TestPrintOutcomes(t *testing.T) {
	changes := &modules.ChangeSet{Install: true, Changes: []firewall.Change{
		{Action: firewall.Add}, {Action: firewall.Add}, {Action: firewall.Remove}, {Action: firewall.Update},
	}}
	outs := []runner.Outcome{
		{Host: "pi-01", Status: runner.Applied, Generation: 12, Changes: changes, Duration: 2140 * time.Millisecond},
		{Host: "pi-02", Status: runner.Unchanged, Changes: &modules.ChangeSet{}},
		{Host: "pi-03", Status: runner.Reverted, Changes: changes, Duration: 63 * time.Second,
			Err: &runner.StepError{Host: "pi-03", Step: "confirm", Err: errors.New("no new connection confirmed the new rules")}, Hints: []string{"the plan must admit a new SSH connection"}},
		{Host: "pi-04", Status: runner.Failed, Err: errors.New("connect: connection refused")},
		{Host: "pi-06", Status: runner.Applied, Generation: 3, Changes: changes, Duration: time.Second, Warnings: []string{"took over a stale lock: run=ab12"}},
		{Host: "pi-05", Status: runner.Skipped, Changes: changes},
	}
	want := `HOST   OUTCOME    CHANGES            GENERATION  TIME
pi-01  applied    +2 -1 ~1, install  12          2.1s
pi-02  unchanged  none               -           -
pi-03  reverted   +2 -1 ~1, install  -           63.0s
pi-04  failed     -                  -           -
pi-06  applied    +2 -1 ~1, install  3           1.0s
pi-05  skipped    +2 -1 ~1, install  -           -
pi-03: reverted: confirm: no new connection confirmed the new rules
  hint: the plan must admit a new SSH connection
pi-04: failed: connect: connection refused
pi-06: warning: took over a stale lock: run=ab12
Done: 2 applied, 1 unchanged, 1 reverted, 1 failed, 1 skipped.
`
	var b strings.Builder
	printOutcomes(&b, outs, runner.CountOutcomes(outs))
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
