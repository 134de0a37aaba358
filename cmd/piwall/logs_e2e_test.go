//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piwall/piwall/examples/lab"
)

// sinceStart is --since for the drops of this test only: the lab's Pis
// share the machine's kernel log, and the next lab's pi-01 has this one's
// addresses, so its log holds every earlier lab's lines (a real Pi's holds
// its own boot's).
func sinceStart(start time.Time) string {
	return (time.Since(start) + 5*time.Second).Round(time.Second).String()
}

// TestE2ELogs reads a lab Pi's drop log after the Pi tried blocked.lab and
// the intruder tried the Pi's SSH, then follows it:
//
//	go test -count=1 -run 'TestE2ELogs' ./cmd/piwall -v
func TestE2ELogs(t *testing.T) {
	l := e2eLab(t, 2)
	p := l.Pis[0]
	start := time.Now()
	site := labPlan(t, l, adminSSH, expectBlockedLab, "20s")
	piwall(t, 0, "apply", site, "--yes")
	out, _ := piwall(t, 0, "logs", "pi-01", "--plan", site, "--since", "10m")
	t.Logf("piwall logs before any traffic:\n%s", out)

	blocked := func(pi lab.Pi) {
		onPi(t, l, pi, "timeout 2 bash -c 'exec 3<>/dev/tcp/198.18.1.12/443' 2>/dev/null; true")
	}
	blocked(p)
	blocked(l.Pis[1]) // the other Pi's drops are in the same kernel log, and not pi-01's
	for range 2 {
		lab.ProbeFrom(context.Background(), "pwl-intruder", "tcp", netip.AddrPortFrom(p.Addrs.V4, 22))
	}

	out, _ = piwall(t, 0, "logs", "pi-01", "--plan", site, "--since", sinceStart(start))
	t.Logf("piwall logs:\n%s", out)
	js, _ := piwall(t, 0, "logs", "pi-01", "--plan", site, "--json", "--since", sinceStart(start))
	var doc struct {
		Drops []struct {
			Direction, Proto, Peer, Name string
			Port, Count                  int
		} `json:"drops"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	var sawBlocked, sawIntruder bool
	for _, d := range doc.Drops {
		switch {
		case d.Direction == "out" && d.Proto == "tcp" && d.Peer == "198.18.1.12" && d.Name == "blocked.lab" && d.Port == 443 && d.Count >= 1:
			sawBlocked = true
		case d.Direction == "in" && d.Proto == "tcp" && d.Peer == lab.Intruder.V4.String() && d.Port == 22 && d.Count >= 2:
			sawIntruder = true
		}
		if d.Peer == l.Pis[1].Addrs.V4.String() {
			t.Errorf("pi-02's drop in pi-01's log: %+v", d)
		}
	}
	if !sawBlocked || !sawIntruder {
		t.Errorf("logs --json: blocked.lab seen %v, the intruder's SSH (2 tries or more) seen %v:\n%s", sawBlocked, sawIntruder, js)
	}

	t.Run("follow", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "logs", "pi-01", "--plan", site, "--follow", "--since", sinceStart(start))
		cmd.Env = append(os.Environ(), asCLI+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		onPi(t, l, p, "timeout 2 bash -c 'exec 3<>/dev/tcp/198.18.1.12/80' 2>/dev/null; true")
		time.Sleep(2*followEvery + time.Second)
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("logs --follow ended with %v after SIGINT\n%s", err, stderr.String())
		}
		t.Logf("piwall logs --follow:\n%s", stdout.String())
		after := stdout.String()[strings.Index(stdout.String(), "kinds."):]
		if !strings.Contains(after, " out tcp blocked.lab (198.18.1.12) 80") {
			t.Errorf("no new drop to blocked.lab's tcp/80 followed:\n%s", stdout.String())
		}
	})
}
