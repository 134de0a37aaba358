package plans

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// lint warns about plans that are valid but likely wrong. Each warning says
// why it matters on a Pi and what to write instead.
func (p *Plan) lint() hcl.Diagnostics {
	var diags hcl.Diagnostics
	// Hosts with the same allowlists and SSH port share a warning about
	// them: a fleet of a hundred kiosks gets one "No NTP", not a hundred.
	type fleetWarning struct {
		first *Host
		hosts []string
		port  int
	}
	var noSSH, noNTP []*fleetWarning
	bySet := map[string][2]*fleetWarning{}
	for _, h := range p.Hosts {
		pol := h.Policy
		port := 22
		if h.Connection.Port != nil {
			port = h.Connection.Port.V
		} else if p.Defaults.Port != nil {
			port = p.Defaults.Port.V
		}
		key := fmt.Sprint(pol.Allowlists, port)
		w, seen := bySet[key]
		if !seen {
			ssh := Port{Proto: "tcp", From: uint16(port), To: uint16(port)}
			if !admits(pol.Inbound, ssh) {
				w[0] = &fleetWarning{first: h, port: port}
				noSSH = append(noSSH, w[0])
			}
			if !admitsNTP(pol.Outbound) {
				w[1] = &fleetWarning{first: h, port: port}
				noNTP = append(noNTP, w[1])
			}
			bySet[key] = w
		}
		for _, fw := range w {
			if fw != nil {
				fw.hosts = append(fw.hosts, h.Name)
			}
		}
		for _, e := range append(append([]*Entry{}, pol.Inbound...), pol.Outbound...) {
			for _, peer := range e.Peers {
				if peer.Name != "" && pol.DNS.Mode == "none" {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Name without DNS",
						Detail: fmt.Sprintf("%q is a name, but a host that gets this entry has dns = \"none\": piwall resolves the name once, when it plans, "+
							"and the host itself cannot look it up again. Allow DNS, or write the address.", peer.Name),
						Subject: peer.Range.Ptr()})
				}
				if e.Direction == Inbound && peer.Name == "" && peer.Prefix.Bits() == 0 {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Inbound from anywhere",
						Detail: fmt.Sprintf("%s admits the whole internet%s. A kiosk Pi should accept connections only from its admin network: "+
							"name that network instead.", peer.Prefix, portsPhrase(e.Ports)),
						Subject: peer.Range.Ptr()})
				}
			}
		}
		diags = append(diags, redundant(pol.Inbound)...)
		diags = append(diags, redundant(pol.Outbound)...)
	}
	for _, w := range noSSH {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "No SSH access",
			Detail: fmt.Sprintf("No allowlist of %s admits inbound tcp/%d, the port piwall connects to: unless a port forward on the way "+
				"leads it to another port of the Pi's sshd, nobody can reach %s over SSH after apply, and piwall, which checks each Pi "+
				"against the port its sshd sees, refuses to apply without --force. Add inbound { from = [your admin network] ports = [\"tcp/%d\"] }.",
				hostList(w.hosts), w.port, pronoun(w.hosts), w.port),
			Subject: w.first.DeclRange.Ptr()})
	}
	for _, w := range noNTP {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "No NTP",
			Detail: fmt.Sprintf("No allowlist of %s lets %s reach udp/123. A Raspberry Pi has no battery-backed clock: "+
				"without NTP its clock is wrong after every boot, and TLS to its dashboard fails. Add outbound { to = [your time servers] ports = [\"udp/123\"] }.", hostList(w.hosts), pronoun(w.hosts)),
			Subject: w.first.DeclRange.Ptr()})
	}
	return dedupe(diags)
}

func pronoun(hosts []string) string {
	if len(hosts) == 1 {
		return "it"
	}
	return "them"
}

// hostList names hosts in a warning: host "a", hosts "a" and "b", or the
// first few and how many more.
func hostList(hosts []string) string {
	q := make([]string, 0, len(hosts))
	for i, h := range hosts {
		if i == 3 && len(hosts) > 4 {
			q = append(q, fmt.Sprintf("%d more", len(hosts)-3))
			break
		}
		q = append(q, fmt.Sprintf("%q", h))
	}
	switch len(q) {
	case 1:
		return "host " + q[0]
	case 2:
		return "hosts " + q[0] + " and " + q[1]
	}
	return "hosts " + strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// admits reports whether some entry allows port from or to some peer.
func admits(entries []*Entry, port Port) bool {
	for _, e := range entries {
		if len(e.Ports) == 0 {
			return true
		}
		for _, p := range e.Ports {
			if p.Contains(port) {
				return true
			}
		}
	}
	return false
}

// admitsNTP reports whether outbound entries let a host reach a time
// server: an entry that names udp/123, or one without ports to a peer
// named as NTP servers are (pool.ntp.org, time.cloudflare.com). An entry
// without ports to other peers (a dashboard) says nothing of time.
func admitsNTP(entries []*Entry) bool {
	ntp := Port{Proto: "udp", From: 123, To: 123}
	for _, e := range entries {
		if len(e.Ports) == 0 {
			for _, p := range e.Peers {
				if ntpName(p.Name) {
					return true
				}
			}
			continue
		}
		for _, p := range e.Ports {
			if p.Contains(ntp) {
				return true
			}
		}
	}
	return false
}

// ntpName reports whether a DNS name is one a time server goes by: a label
// that is "ntp" or "time", or starts with one (ntp1, timeserver).
func ntpName(name string) bool {
	for _, l := range strings.Split(strings.ToLower(name), ".") {
		if strings.HasPrefix(l, "ntp") || strings.HasPrefix(l, "time") {
			return true
		}
	}
	return false
}

// redundant warns about an entry that another entry of the same host and
// direction already covers: every peer and every port of it.
func redundant(entries []*Entry) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i, b := range entries {
		for j, a := range entries {
			if i == j || !covers(a, b) {
				continue
			}
			// Of two identical entries, only the later one is redundant.
			if covers(b, a) && j > i {
				continue
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Redundant entry",
				Detail: fmt.Sprintf("Everything this %s entry of allowlist %q allows, %s entry %d of allowlist %q (at %s) allows already. Remove one.",
					b.Direction, b.Allowlist, a.Direction, a.Index, a.Allowlist, a.DeclRange),
				Subject: b.DeclRange.Ptr()})
			break
		}
	}
	return diags
}

func covers(a, b *Entry) bool {
	for _, bp := range b.Peers {
		found := false
		for _, ap := range a.Peers {
			if (ap.Name != "" && ap.Name == bp.Name) ||
				(ap.Name == "" && bp.Name == "" && ap.Prefix.Bits() <= bp.Prefix.Bits() && ap.Prefix.Contains(bp.Prefix.Addr())) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(a.Ports) == 0 {
		return true
	}
	if len(b.Ports) == 0 {
		return false
	}
	for _, bp := range b.Ports {
		found := false
		for _, ap := range a.Ports {
			if ap.Contains(bp) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func portsPhrase(ports []Port) string {
	if len(ports) == 0 {
		return " on every port"
	}
	s := " on"
	for i, p := range ports {
		if i > 0 {
			s += ","
		}
		s += " " + p.String()
	}
	return s
}

// dedupe drops repeats: a problem of an allowlist shows once, however many
// hosts it is merged into.
func dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		key := d.Summary + "\x00" + d.Detail
		if d.Subject != nil {
			key += "\x00" + d.Subject.String()
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, d)
		}
	}
	return out
}
