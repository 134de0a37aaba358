//go:build linux

package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules"
)

// Start brings up a lab for a test and tears it down when the test ends,
// whether it passed or not. It skips the test, saying what is missing, on a
// machine that cannot run the lab. Labs are one per machine: tests of
// several packages that each Start one take turns.
func Start(t testing.TB, cfg Config) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("no lab: %v (%s; CI runs these tests as root: bash .ci/test)", err, strings.Join(modules.Hints(err), "; "))
	}
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile("/run/lock/piwall-lab.lock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	if cfg.Log == nil {
		cfg.Log = testLog{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := Up(ctx, cfg)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := Down(context.Background(), l.Dir); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
