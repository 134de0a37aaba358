//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/examples/lab"
)

// TestE2EAudit onboards a fresh lab Pi whose plan lacks api.lab: audit
// mode lets the Pi reach it and logs it, logs --suggest proposes the
// entry, and the plan with it pasted, enforcing, passes check:
//
//	go test -count=1 -run 'TestE2EAudit' ./cmd/piwall -v
func TestE2EAudit(t *testing.T) {
	l := e2eLab(t, 1)
	p := l.Pis[0]
	start := time.Now()
	plan := func(name, extra string) string {
		src := fmt.Sprintf(`defaults {
  user          = "pi"
  identity_file = %q
  known_hosts   = %q
  revert_after  = "20s"
}
allowlist "kiosk" {
%s
  outbound {
    to    = ["dashboard.lab"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.lab"]
    ports = ["udp/123"]
  }
%s
  dns       = "system"
  log_drops = true
}
host "pi-01" {
  address    = %q
  allowlists = ["kiosk"]
}
`, l.Key(), l.KnownHosts(), adminSSH, extra, p.Addrs.V4)
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	audit := plan("audit.hcl", `  mode = "audit"`)
	out, _ := piwall(t, 0, "plan", audit)
	if !strings.Contains(out, "audit mode: allow out what the rules would drop") {
		t.Errorf("plan does not say audit mode:\n%s", out)
	}
	piwall(t, 0, "apply", audit, "--yes")

	// The Pi uses api.lab, which the plan lacks: audit mode lets it through.
	got := onPi(t, l, p, `timeout 3 bash -c 'exec 3<>/dev/tcp/198.18.1.11/443 && head -n1 <&3'; timeout 3 bash -c 'exec 3<>/dev/tcp/api.lab/443 && head -n1 <&3'`)
	if strings.Count(got, "api") != 2 {
		t.Fatalf("api.lab from the Pi in audit mode: %q, want its banner twice", got)
	}
	table, _ := piwall(t, 0, "logs", "pi-01", "--plan", audit, "--since", sinceStart(start))
	t.Logf("piwall logs:\n%s", table)
	if !strings.Contains(table, "out (audit)  tcp    198.18.1.11") {
		t.Errorf("logs does not show api.lab's would-drop:\n%s", table)
	}
	suggestion, _ := piwall(t, 0, "logs", "pi-01", "--plan", audit, "--suggest", "--since", sinceStart(start))
	t.Logf("piwall logs --suggest:\n%s", suggestion)
	block := regexp.MustCompile(`outbound \{\n  to    = \["api\.lab"\]\n  ports = \[[^\]]*"tcp/443"[^\]]*\]\n\}\n`).FindString(suggestion)
	if block == "" {
		t.Fatalf("no outbound entry for api.lab tcp/443 in the suggestion:\n%s", suggestion)
	}

	// The entry pasted, enforcing: api.lab is reachable, the rest dropped.
	enforce := plan("enforce.hcl", block+expectBlockedLab)
	piwall(t, 0, "apply", enforce, "--yes")
	stdout, _ := piwall(t, 0, "check", enforce)
	t.Logf("piwall check:\n%s", stdout)
	if !regexp.MustCompile(`ok +tcp/443 api\.lab \(198\.18\.1\.11\) +reachable +connected`).MatchString(stdout) {
		t.Errorf("check does not show api.lab reachable:\n%s", stdout)
	}
	if _, err := lab.ProbeFrom(t.Context(), p.Netns, "tcp", netip.AddrPortFrom(lab.Services[2].Addrs.V4, 443)); err == nil {
		t.Errorf("blocked.lab reachable once enforcing")
	}
}
