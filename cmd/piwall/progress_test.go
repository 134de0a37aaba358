package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/piwall/piwall/runner"
)

// lockedBuffer is written by the progress's ticker while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLiveProgress(t *testing.T) {
	var w lockedBuffer
	p := newLiveProgress(&w, "applying", 3, false)
	step := func(host, text string) { p.event(runner.Event{Host: host, Kind: runner.StepStarted, Text: text}) }
	step("pi-01", "connecting")
	step("pi-02", "preparing")
	step("pi-03", "confirming over a new connection "+strings.Repeat("and more ", 10))
	p.event(runner.Event{Host: "pi-02", Kind: runner.Warning, Text: "took over a stale lock"})
	p.event(runner.Event{Host: "pi-01", Kind: runner.HostDone})
	p.stop()
	out := w.String()
	// The last block: the counter, then a line per host in flight, cut to
	// the terminal's width so that the redraw can move back over it.
	last := out[strings.LastIndex(out, "applying: 1/3 hosts done"):]
	lines := strings.Split(strings.TrimSuffix(last, "\n"), "\n")
	if len(lines) != 3 || lines[0] != "applying: 1/3 hosts done, 2 in flight" ||
		!strings.HasPrefix(lines[1], "  pi-02            preparing (") || !strings.HasPrefix(lines[2], "  pi-03            confirming") {
		t.Fatalf("last block: got %q", lines)
	}
	if len(lines[2]) >= 80 || !strings.HasSuffix(lines[2], "...") {
		t.Errorf("a long line: got %d characters %q, want it cut below 80 with ...", len(lines[2]), lines[2])
	}
	// The next redraw moves back over exactly the lines drawn.
	if p.drawn != 3 {
		t.Errorf("lines to move back over: got %d, want 3", p.drawn)
	}
	if strings.Contains(out, "\x1b[1m") {
		t.Errorf("colour without being asked for: %q", out)
	}
}

func TestPlainProgress(t *testing.T) {
	var w bytes.Buffer
	p := newProgress(&w, "applying", 2, true)
	p.event(runner.Event{Host: "pi-01", Kind: runner.StepStarted, Text: "preparing"})
	p.event(runner.Event{Host: "pi-01", Kind: runner.Warning, Text: "took over a stale lock: run=ab12"})
	p.event(runner.Event{Host: "pi-01", Kind: runner.HostDone})
	p.stop()
	if got, want := w.String(), "pi-01: preparing\npi-01: warning: took over a stale lock: run=ab12\n"; got != want {
		t.Errorf("off a terminal: got %q, want %q", got, want)
	}
}
