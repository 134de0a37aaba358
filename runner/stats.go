package runner

import (
	"sync"
	"sync/atomic"
)

// Stats counts what a run did on each host, for --stats and for the tests
// that hold piwall to its round trips.
type Stats struct {
	mu    sync.Mutex
	hosts map[string]*HostStats
}

// HostStats are one host's counts.
type HostStats struct {
	Connections, Commands, Uploads atomic.Int64
	// RoundTrips counts the times the controller waited on the host: each
	// TCP connect, and each time the host's bytes arrived after the
	// controller had sent something since the last ones (a turn of the
	// conversation). Requests sent together count once.
	RoundTrips atomic.Int64
}

// Host returns the counts of a host label.
func (s *Stats) Host(label string) *HostStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hosts == nil {
		s.hosts = map[string]*HostStats{}
	}
	if s.hosts[label] == nil {
		s.hosts[label] = &HostStats{}
	}
	return s.hosts[label]
}
