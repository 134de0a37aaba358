package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/piwall/piwall/inventory"
)

// Conn is one SSH connection to a host: all the apply protocol needs of it.
type Conn interface {
	// Run runs command through the remote user's shell, with stdin (which
	// may be nil), and returns what it printed and its exit status. A
	// non-zero exit is a Result, not an error: err reports only that the
	// command could not run to its end (the connection broke, ctx ended).
	Run(ctx context.Context, command string, stdin []byte) (Result, error)
	// RTT is the round-trip time measured on the connection so far (its
	// shortest exchange), or 0 if none was.
	RTT() time.Duration
	// Close closes the connection without waiting on a host that no longer
	// answers.
	Close() error
}

// Dialer opens connections. Every Dial is a new TCP connection with a new
// authentication: the apply protocol relies on that to prove a host
// reachable under its new rules.
type Dialer interface {
	Dial(ctx context.Context, t inventory.Target) (Conn, error)
}

// Result is what a remote command printed and how it exited.
type Result struct {
	Stdout, Stderr []byte
	Status         int
}

// CommandError is a remote command that exited non-zero.
type CommandError struct {
	Command string // a short name for it, not the whole script
	Status  int
	Stderr  string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Command, e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}
