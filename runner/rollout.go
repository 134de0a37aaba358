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
	// runGroup runs hosts [from, to) with the parallelism and the failure
	// budget; it returns once all it started have finished.
	runGroup := func(from, to int) {
		sem := make(chan struct{}, max(r.Parallel, 1))
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			sem <- struct{}{}
			mu.Lock()
			if stop || ctx.Err() != nil {
				mu.Unlock()
				<-sem
				break
			}
			started[i] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
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
			}()
		}
		wg.Wait()
	}
	canary := min(max(r.Canary, 0), n)
	if canary > 0 {
		runGroup(0, canary)
		mu.Lock()
		for i := 0; i < canary; i++ {
			if outs[i].failed() {
				stop = true // a canary that fails stops everything
			}
		}
		mu.Unlock()
	}
	batch := r.Batch
	if batch <= 0 {
		batch = n
	}
	for from := canary; from < n; from += batch {
		runGroup(from, min(from+batch, n))
	}
	for i := range outs {
		if !started[i] {
			outs[i] = Outcome{Status: Skipped}
		}
	}
	return outs
}
