package plans

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestHostList(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
		want  string
	}{
		{"one host", []string{"pi-01"}, `host "pi-01"`},
		{"two hosts", []string{"pi-01", "pi-02"}, `hosts "pi-01" and "pi-02"`},
		{"four hosts", []string{"a", "b", "c", "d"}, `hosts "a", "b", "c" and "d"`},
		{"a fleet", []string{"a", "b", "c", "d", "e", "f"}, `hosts "a", "b", "c" and 3 more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostList(tt.hosts); got != tt.want {
				t.Errorf("hostList(%q) = %s, want %s", tt.hosts, got, tt.want)
			}
		})
	}
}

// TestLintNoSSH: a plan whose allowlists do not admit the port piwall
// connects to is warned about, naming that port and the port forward that
// would make it right; one that does is not.
func TestLintNoSSH(t *testing.T) {
	const site = `
allowlist "admin" {
  inbound {
    from  = ["10.20.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["10.20.2.10"]
    ports = ["udp/123"]
  }
}

host "pi-01" {
  address    = "10.20.1.11"
  allowlists = ["admin"]
}

host "pi-02" {
  address    = "10.20.1.12"
  port       = 22002
  allowlists = ["admin"]
}
`
	_, diags := Load(writePlan(t, map[string]string{"site.hcl": site}), Options{})
	var warned []string
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning && d.Summary == "No SSH access" {
			warned = append(warned, d.Detail)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], `host "pi-02" admits inbound tcp/22002, the port piwall connects to`) ||
		!strings.Contains(warned[0], "port forward") {
		t.Errorf("No SSH access warnings: %q, want one for pi-02's tcp/22002 that names a port forward", warned)
	}
}
