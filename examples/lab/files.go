//go:build linux

package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The files an operator reaches the lab with, written by Up into the lab's
// directory: ssh_config and known_hosts for OpenSSH and piwall alike, and
// site.hcl, the plan that locks the lab's Pis down.

func (l *Lab) writeOperatorFiles() error {
	kh, err := knownHostsText(l.Pis, l.RTT > 0)
	if err != nil {
		return err
	}
	files := map[string]string{
		l.SSHConfig():  sshConfigText(l.Dir, l.Pis, l.RTT > 0),
		l.KnownHosts(): kh,
		l.Plan():       sitePlan(l.Dir, len(l.Pis), l.RTT > 0),
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sshConfigText is the lab's ssh_config: each Pi by its name, on the lab
// bridge or, relayed, through its relay on loopback.
func sshConfigText(dir string, pis []Pi, relayed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The lab's Pis. Use: ssh -F %s pi-01\n", filepath.Join(dir, "ssh_config"))
	for i, p := range pis {
		if relayed {
			fmt.Fprintf(&b, "Host %s %s.lab\n  HostName 127.0.0.1\n  Port %d\n", p.Name, p.Name, RelayPort(i+1))
			continue
		}
		fmt.Fprintf(&b, "Host %s %s.lab\n  HostName %s\n", p.Name, p.Name, p.Addrs.V4)
	}
	fmt.Fprintf(&b, `Host *
  User pi
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
  ConnectTimeout 5
`, filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "known_hosts"))
	return b.String()
}

// knownHostsText lists each Pi's host key under its name and both
// addresses, and its relay's address where it is relayed.
func knownHostsText(pis []Pi, relayed bool) (string, error) {
	var b strings.Builder
	for i, p := range pis {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(p.HostKey))
		if err != nil {
			return "", fmt.Errorf("%s: host key: %w", p.Name, err)
		}
		names := []string{p.Name, p.Name + ".lab", p.Addrs.V4.String(), p.Addrs.V6.String()}
		if relayed {
			names = append(names, knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", RelayPort(i+1))))
		}
		b.WriteString(knownhosts.Line(names, k))
		b.WriteString("\n")
	}
	return b.String(), nil
}

// sitePlan is the lab's plan for n Pis whose lab lives in dir. With the
// default directory and 3 Pis it is examples/lab/site.hcl.
func sitePlan(dir string, n int, relayed bool) string {
	type host struct {
		Name, Address string
		Port          int // 0: the default
	}
	var hosts []host
	for i := 1; i <= n; i++ {
		if relayed {
			hosts = append(hosts, host{PiName(i), "127.0.0.1", RelayPort(i)})
			continue
		}
		hosts = append(hosts, host{PiName(i), PiAddrs(i).V4.String(), 0})
	}
	var b strings.Builder
	err := siteTemplate.Execute(&b, map[string]any{
		"Key":        filepath.Join(dir, "id_ed25519"),
		"KnownHosts": filepath.Join(dir, "known_hosts"),
		"Admin4":     Controller.V4.String() + "/32",
		"Admin6":     Controller.V6.String() + "/128",
		"Hosts":      hosts,
	})
	if err != nil {
		panic(err) // the template and its data are fixed
	}
	return b.String()
}

var siteTemplate = template.Must(template.New("site.hcl").Parse(`# The lab's fleet, as ` + "`piwall-lab up`" + ` writes it. Every Pi is a kiosk: it may reach
# its dashboard and API by name over tcp/443 and ask ntp.lab the time, and only
# the operator's controller may reach it over SSH. blocked.lab and the intruder
# stay out: piwall check proves blocked.lab blocked from every Pi.

variable "admin" {
  type        = list(string)
  default     = ["{{.Admin4}}", "{{.Admin6}}"]
  description = "Where the operator's SSH sessions come from: the controller on the lab bridge."
}

defaults {
  user          = "pi"
  identity_file = "{{.Key}}"
  known_hosts   = "{{.KnownHosts}}"
  revert_after  = "30s"
}

allowlist "kiosk" {
  inbound {
    from  = var.admin
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["dashboard.lab", "api.lab"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.lab"]
    ports = ["udp/123"]
  }
  expect_blocked {
    to    = ["blocked.lab"]
    ports = ["tcp/443"]
  }
  dns       = "system"
  ping      = true
  log_drops = true
}

group "kiosk" {
  allowlists = ["kiosk"]
}
{{range .Hosts}}
host "{{.Name}}" {
  address = "{{.Address}}"
{{- if .Port}}
  port    = {{.Port}}
{{- end}}
  groups  = ["kiosk"]
}
{{end}}
rollout {
  parallel = 10
  canary   = 1
  batch    = 0
}
`))
