package main

// Progress of long runs, on stderr. On a terminal: a live block with one
// line per host in flight and its current step, under a counter of hosts
// done, redrawn in place; colour only underlines what the words say, and
// none under NO_COLOR or --no-color. Anywhere else: one plain line per
// event, for logs.

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/piwall/piwall/runner"
)

// progress shows the events of one phase of a run over hosts.
type progress interface {
	event(e runner.Event)
	stop()
}

// newProgress picks the live view on a terminal, plain lines elsewhere.
// The phase ("reading facts", "applying") heads the live counter.
func newProgress(w io.Writer, phase string, total int, noColor bool) progress {
	if isTerminal(w) {
		return newLiveProgress(raw(w), phase, total, !noColor && os.Getenv("NO_COLOR") == "")
	}
	return &plainProgress{w: w}
}

type plainProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *plainProgress) event(e runner.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case runner.StepStarted:
		fmt.Fprintf(p.w, "%s: %s\n", e.Host, e.Text)
	case runner.Warning:
		fmt.Fprintf(p.w, "%s: warning: %s\n", e.Host, e.Text)
	}
}

func (p *plainProgress) stop() {}

// liveProgress redraws the hosts in flight ten times a second.
type liveProgress struct {
	mu       sync.Mutex
	w        io.Writer
	phase    string
	total    int
	done     int
	steps    map[string]string
	since    map[string]time.Time
	color    bool
	width    int // of the terminal: a longer line would wrap and spoil the redraw
	drawn    int // lines drawn last time, to move back over
	ticker   *time.Ticker
	finished chan struct{}
}

func newLiveProgress(w io.Writer, phase string, total int, color bool) *liveProgress {
	p := &liveProgress{w: w, phase: phase, total: total, steps: map[string]string{}, since: map[string]time.Time{}, color: color, width: 80,
		ticker: time.NewTicker(100 * time.Millisecond), finished: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			p.width = cols
		}
	}
	go func() {
		for {
			select {
			case <-p.ticker.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			case <-p.finished:
				return
			}
		}
	}()
	return p
}

// event updates the block; warnings wait for the outcome table, which
// lists them.
func (p *liveProgress) event(e runner.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case runner.HostDone:
		delete(p.steps, e.Host)
		delete(p.since, e.Host)
		p.done++
	case runner.StepStarted:
		if _, ok := p.steps[e.Host]; !ok {
			p.since[e.Host] = time.Now()
		}
		p.steps[e.Host] = e.Text
	}
}

// draw rewrites the block: back up over the last one, then the counter and
// a line per host in flight, oldest first.
func (p *liveProgress) draw() {
	var b strings.Builder
	for i := 0; i < p.drawn; i++ {
		b.WriteString("\x1b[1A\x1b[2K") // up one line, clear it
	}
	hosts := make([]string, 0, len(p.steps))
	for h := range p.steps {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(i, j int) bool { return p.since[hosts[i]].Before(p.since[hosts[j]]) })
	counter := fmt.Sprintf("%s: %d/%d hosts done, %d in flight", p.phase, p.done, p.total, len(hosts))
	if p.color {
		counter = "\x1b[1m" + counter + "\x1b[0m"
	}
	b.WriteString(counter + "\n")
	const most = 20
	for i, h := range hosts {
		if i == most {
			fmt.Fprintf(&b, "  ... and %d more\n", len(hosts)-most)
			break
		}
		// Raw on the terminal: what came from the host is made safe here.
		line := fmt.Sprintf("  %-16s %s (%ds)", safe(h), safe(p.steps[h]), int(time.Since(p.since[h]).Seconds()))
		if len(line) >= p.width {
			line = line[:p.width-4] + "..."
		}
		b.WriteString(line + "\n")
	}
	p.drawn = 1 + min(len(hosts), most+1)
	io.WriteString(p.w, b.String())
}

// stop draws the final counter and leaves it on the screen.
func (p *liveProgress) stop() {
	p.ticker.Stop()
	close(p.finished)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
}
