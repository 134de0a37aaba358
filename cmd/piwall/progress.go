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

// stepDone is the step a command reports when it is done with a host.
const stepDone = "done"

// progress reports the steps of a run over hosts.
type progress interface {
	report(host, step string)
	stop()
}

// newProgress picks the live view on a terminal, plain lines elsewhere.
// The phase ("reading facts", "applying") heads the live counter.
func newProgress(w io.Writer, phase string, total int, noColor bool) progress {
	if isTerminal(w) {
		return newLiveProgress(w, phase, total, !noColor && os.Getenv("NO_COLOR") == "")
	}
	return &plainProgress{w: w}
}

// runnerProgress adapts a progress to the runner's callback.
func runnerProgress(p progress) runner.Progress { return p.report }

type plainProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *plainProgress) report(host, step string) {
	if step == stepDone {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s: %s\n", host, step)
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

func (p *liveProgress) report(host, step string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if step == stepDone {
		if _, ok := p.steps[host]; ok {
			delete(p.steps, host)
			delete(p.since, host)
		}
		p.done++
		return
	}
	if _, ok := p.steps[host]; !ok {
		p.since[host] = time.Now()
	}
	p.steps[host] = step
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
		line := fmt.Sprintf("  %-16s %s (%ds)", h, p.steps[h], int(time.Since(p.since[h]).Seconds()))
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
