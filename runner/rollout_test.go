package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFleet records the order hosts start and end in, and how many are in
// flight at most. Hosts in fail fail. A host in flight stays until hold
// hosts are (or 50 ms have passed: the last of a fleet may never see so
// many), so that the most in flight does not hang on the machine's speed.
type fakeFleet struct {
	mu          sync.Mutex
	events      []string
	inFlight    int
	maxInFlight int
	fail        map[int]bool
	hold        int
}

func (f *fakeFleet) work(_ context.Context, i int) Outcome {
	f.mu.Lock()
	f.events = append(f.events, fmt.Sprintf("start %d", i))
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		full := f.inFlight >= f.hold
		f.mu.Unlock()
		if full {
			break
		}
	}
	time.Sleep(time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	f.events = append(f.events, fmt.Sprintf("end %d", i))
	if f.fail[i] {
		return Outcome{Status: Failed}
	}
	return Outcome{Status: Applied}
}

func statuses(outs []Outcome) string {
	var s []string
	for _, o := range outs {
		s = append(s, string(o.Status))
	}
	return strings.Join(s, " ")
}

func TestRollout(t *testing.T) {
	tests := []struct {
		name         string
		rollout      Rollout
		hosts        int
		fail         []int
		want         string // the statuses in host order
		wantParallel int    // most hosts in flight at once
	}{
		{"all at once", Rollout{Parallel: 10}, 4, nil, "applied applied applied applied", 4},
		{"parallel bounds the hosts in flight", Rollout{Parallel: 2}, 6, nil, "applied applied applied applied applied applied", 2},
		{"canary failure stops everything", Rollout{Parallel: 10, Canary: 1}, 4, []int{0}, "failed skipped skipped skipped", 1},
		{"canary passes, the rest follow", Rollout{Parallel: 10, Canary: 1}, 4, nil, "applied applied applied applied", 3},
		{"max_failures 0: the first failure stops new starts", Rollout{Parallel: 1, Batch: 1}, 4, []int{1}, "applied failed skipped skipped", 1},
		{"max_failures 1 tolerates one", Rollout{Parallel: 1, MaxFailures: 1}, 5, []int{1, 3}, "applied failed applied failed skipped", 1},
		{"batches of two", Rollout{Parallel: 10, Canary: 1, Batch: 2}, 5, nil, "applied applied applied applied applied", 2},
		{"failure in a batch: hosts in flight finish, no new batch", Rollout{Parallel: 10, Batch: 2}, 6, []int{0}, "failed applied skipped skipped skipped skipped", 2},
		{"canary larger than the fleet", Rollout{Parallel: 3, Canary: 9}, 2, nil, "applied applied", 2},
		{"no hosts", Rollout{Parallel: 3, Canary: 1}, 0, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeFleet{fail: map[int]bool{}, hold: tt.wantParallel}
			for _, i := range tt.fail {
				f.fail[i] = true
			}
			got := statuses(tt.rollout.Run(context.Background(), tt.hosts, f.work))
			if got != tt.want {
				t.Errorf("outcomes: got %q, want %q (events %v)", got, tt.want, f.events)
			}
			if f.maxInFlight != tt.wantParallel {
				t.Errorf("hosts in flight at most: got %d, want %d (events %v)", f.maxInFlight, tt.wantParallel, f.events)
			}
		})
	}
}

func TestRolloutOrder(t *testing.T) {
	f := &fakeFleet{fail: map[int]bool{}}
	Rollout{Parallel: 10, Canary: 1, Batch: 2}.Run(context.Background(), 5, f.work)
	// The canary ends before any other host starts; a batch ends before
	// the next starts.
	pos := map[string]int{}
	for i, e := range f.events {
		pos[e] = i
	}
	for _, before := range [][2]string{{"end 0", "start 1"}, {"end 1", "start 3"}, {"end 2", "start 3"}, {"end 1", "start 4"}, {"end 2", "start 4"}} {
		if pos[before[0]] > pos[before[1]] {
			t.Errorf("%q came after %q: %v", before[0], before[1], f.events)
		}
	}
}
