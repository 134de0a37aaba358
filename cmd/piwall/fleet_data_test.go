package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The allowlist and settings of the fleets made from data: the simulated
// hosts' keys, SSH on their ports, 50 hosts in flight.
const dataFleetPlan = `defaults {
  user          = "root"
  identity_file = %q
  known_hosts   = %q
}
allowlist "kiosk" {
  inbound {
    from  = ["127.0.0.1"]
    ports = ["tcp/1024-65535"]
  }
  outbound {
    to    = ["api.example.com"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
}
group "kiosk" {
  allowlists = ["kiosk"]
}
rollout {
  parallel = 50
}
%s`

// TestFleetFromData plans a fleet of 300 simulated Pis whose hosts come
// from data, not host blocks: the rows of a CSV (for_each), and an Ansible
// INI inventory whose group kiosk is the plan's group.
func TestFleetFromData(t *testing.T) {
	const n = 300
	f, dir := startSim(t, n)
	key, known := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "known_hosts")

	var csv, ini strings.Builder
	csv.WriteString("name,port\n")
	ini.WriteString("# the shop's Pis, as Ansible knows them\n[kiosk]\n")
	for _, h := range f.Hosts {
		fmt.Fprintf(&csv, "%s,%d\n", h.Name, h.Addr.Port)
		fmt.Fprintf(&ini, "%s ansible_host=127.0.0.1 ansible_port=%d\n", h.Name, h.Addr.Port)
	}
	fmt.Fprintf(&ini, "\n[shop:children]\nkiosk\n\n[all:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\n", key)

	tests := []struct {
		name, file, data, hosts string
	}{
		{"CSV", "kiosks.csv", csv.String(), `host "kiosk" {
  for_each = csvdecode(file("kiosks.csv"))
  name     = each.value.name
  address  = "127.0.0.1"
  port     = tonumber(each.value.port)
  groups   = ["kiosk"]
}
`},
		{"Ansible INI", "hosts.ini", ini.String(), `ansible_inventory {
  path = "hosts.ini"
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := t.TempDir()
			if err := os.WriteFile(filepath.Join(site, tt.file), []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(site, "site.hcl"), fmt.Appendf(nil, dataFleetPlan, key, known, tt.hosts), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, out, errOut := runPiwall(t, "validate", site); code != 0 || out != fmt.Sprintf("The plan is valid: %d hosts, 1 allowlist, 0 warnings.\n", n) {
				t.Fatalf("validate: exit %d\n%s\n%s", code, out, errOut)
			}
			code, out, errOut := runPiwall(t, "inventory", site, "--json", "--limit", "sim-0300")
			var inv struct {
				Hosts []struct {
					Host, HostName string
					Port           int
					Groups         []string
				}
			}
			if err := json.Unmarshal([]byte(out), &inv); code != 0 || err != nil || len(inv.Hosts) != 1 {
				t.Fatalf("inventory --json: exit %d, %v\n%s\n%s", code, err, out, errOut)
			}
			last := f.Hosts[n-1]
			wantGroups := "kiosk"
			if tt.file == "hosts.ini" {
				wantGroups = "shop,kiosk"
			}
			if h := inv.Hosts[0]; h.Host != last.Name || h.HostName != "127.0.0.1" || h.Port != last.Addr.Port || strings.Join(h.Groups, ",") != wantGroups {
				t.Errorf("inventory of %s: %+v, want 127.0.0.1 port %d, groups %s", last.Name, h, last.Addr.Port, wantGroups)
			}
			start := time.Now()
			code, out, errOut = runPiwall(t, "plan", site, "--detailed-exitcode")
			took := time.Since(start)
			if code != 2 || !strings.Contains(out, fmt.Sprintf("Plan: %d hosts to change, 0 unchanged, 0 failed.", n)) {
				t.Fatalf("plan: exit %d\n%s\n%s", code, tail(out), tail(errOut))
			}
			t.Logf("plan of %d hosts from %s: %.1fs", n, tt.file, took.Seconds())
		})
	}
}

// tail is the last ten lines of a command's output, for a failure's message.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}
