package runner

import (
	"context"
	"sync"
)

// Rollout orders the work on a fleet: the canary hosts first, alone (any
// failure among them stops the rollout), then the rest in batches, each
// started when the one before it has finished, at most Parallel hosts in
// flight. Once more than MaxFailures hosts failed, no host is started; the
// hosts in flight finish what they do, safely, and the rest are skipped.
type Rollout struct {
	Parallel    int // hosts in flight at once; at least 1
	Canary      int // hosts done first
	Batch       int // hosts per batch after the canary; 0: all the rest at once
	MaxFailures int // failures tolerated before no more hosts start
}

// failed reports whether an outcome counts against the rollout.
func (o Outcome) failed() bool { return o.Status == Failed || o.Status == Reverted }

// Run does work for hosts 0..n-1 in rollout order and returns every host's
// outcome, in host order; a host never started is Skipped.
func (r Rollout) Run(ctx context.Context, n int, work func(ctx context.Context, i int) Outcome) []Outcome {
	outs := make([]Outcome, n)
	started := make([]bool, n)
	var mu sync.Mutex
	failures := 0
	stop := false
	// group runs hosts [from, to) within the failure budget.
	group := func(from, to int) {
		each(from, to, r.Parallel, func(i int) bool {
			mu.Lock()
			defer mu.Unlock()
			started[i] = !stop && ctx.Err() == nil
			return started[i]
		}, func(i int) {
			o := work(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			outs[i] = o
			if o.failed() {
				failures++
				if failures > r.MaxFailures {
					stop = true
				}
			}
		})
	}
	canary := min(max(r.Canary, 0), n)
	if canary > 0 {
		group(0, canary)
		for i := 0; i < canary; i++ {
			if outs[i].failed() {
				stop = true // a canary that fails stops everything
			}
		}
	}
	batch := r.Batch
	if batch <= 0 {
		batch = n
	}
	for from := canary; from < n; from += batch {
		group(from, min(from+batch, n))
	}
	for i := range outs {
		if !started[i] {
			outs[i] = Outcome{Status: Skipped}
		}
	}
	return outs
}

// each runs work(i) for i in [from, to), at most parallel at once, in
// order; start is asked before each, and once it says no, no more start.
// It returns when every work started has returned.
func each(from, to, parallel int, start func(i int) bool, work func(i int)) {
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		sem <- struct{}{}
		if !start(i) {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			work(i)
		}()
	}
	wg.Wait()
}
