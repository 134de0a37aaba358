package firewall

import (
	"strings"
)

// Describe says what a rule does in the operator's words: "allow out
// tcp/443 to api.example.com (93.184.216.34)", "allow in loopback". A rule
// piwall did not write is "foreign rule in INPUT: -A INPUT ...", its line as
// it is; so is a piwall rule with a match Describe does not know.
func Describe(chain string, r *Rule) string {
	f, ok := ruleFields(r)
	comment := f["--comment"]
	if !ok || !strings.HasPrefix(comment, "piwall: ") {
		return "foreign rule in " + chain + ": " + r.Line(chain)
	}
	verb := map[string]string{"ACCEPT": "allow", "DROP": "drop", "REJECT": "reject", "LOG": "log"}[f["-j"]]
	if verb == "" {
		verb = "jump to " + f["-j"] + " for"
	}
	dir, peerFlag, toFrom := "in", "-s", "from"
	switch chain {
	case "OUTPUT":
		dir, peerFlag, toFrom = "out", "-d", "to"
	case "INPUT":
	default:
		dir = "in " + chain
	}
	if comment == commentAudit {
		if f["-j"] == "LOG" {
			return "audit mode: log what the rules would drop " + dir + " (at most " + f["--limit"] + ")"
		}
		return "audit mode: allow " + dir + " what the rules would drop"
	}
	if f["-j"] == "LOG" {
		return "log drops " + dir + " (at most " + f["--limit"] + ")"
	}
	var what string
	switch {
	case f["-i"] == "lo" || f["-o"] == "lo":
		what = "loopback"
	case f["--ctstate"] != "":
		what = "replies (" + f["--ctstate"] + ")"
	case comment == commentNeighbour:
		what = "icmpv6 " + neighbourTypes[f["--icmpv6-type"]]
	case comment == commentMLD:
		what = "mld " + mldTypes[f["--icmpv6-type"]]
	case serviceNames[comment] != "":
		what = serviceNames[comment] + " " + service(f)
		if sp := f["--sport"]; sp != "" {
			what = serviceNames[comment] + " udp/" + sp + " → udp/" + f["--dport"]
		}
	default:
		what = service(f)
		if comment == commentDNS {
			what = "dns " + what
		}
	}
	s := verb + " " + dir + " " + what
	if set := f["--match-set"]; set != "" {
		_, written, _ := strings.Cut(strings.TrimPrefix(comment, "piwall: "), ": ")
		s += " " + toFrom + " " + written + " (as the host resolves it, set " + set + ")"
	} else if peer := f[peerFlag]; peer != "" {
		s += " " + toFrom + " " + peerName(peer, comment)
	} else if _, written, ok := strings.Cut(strings.TrimPrefix(comment, "piwall: "), ": "); ok {
		// An entry for 0.0.0.0/0 or ::/0 has no -s or -d: iptables-save
		// prints none for a match of every address.
		s += " " + toFrom + " " + written
	}
	return s
}

// serviceNames name the host's own services, by their rules' comments.
var serviceNames = map[string]string{commentDHCP: "dhcp", commentDHCPv6: "dhcpv6", commentMDNS: "mdns"}

var mldTypes = map[string]string{"130": "query", "131": "report", "132": "done", "143": "report (v2)"}

var neighbourTypes = map[string]string{
	"133": "router solicitation", "134": "router advertisement",
	"135": "neighbour solicitation", "136": "neighbour advertisement",
}

// ruleFields maps each option of a rule to its value. It reports false
// for a rule with anything it does not know (a negation, another match),
// which Describe then shows as it is.
func ruleFields(r *Rule) (map[string]string, bool) {
	known := map[string]bool{
		"-s": true, "-d": true, "-i": true, "-o": true, "-p": true, "-m": true, "--dport": true, "--sport": true,
		"--icmp-type": true, "--icmpv6-type": true, "--ctstate": true, "--comment": true,
		"--limit": true, "-j": true, "--log-prefix": true,
	}
	f := map[string]string{}
	args := r.Args()
	for i := 0; i < len(args); i += 2 {
		if args[i] == "--match-set" && i+2 < len(args) {
			// A set and the direction it is matched in.
			f["--match-set"] = args[i+1]
			i++
			continue
		}
		if !known[args[i]] || i+1 >= len(args) {
			return f, false
		}
		if args[i] != "-m" {
			f[args[i]] = args[i+1]
		}
	}
	return f, true
}

// service is the protocol and port of a rule: "tcp/443", "udp/8000-8100",
// "ping", "icmp", or "all traffic".
func service(f map[string]string) string {
	switch p := f["-p"]; {
	case p == "":
		return "all traffic"
	case f["--icmp-type"] == "8" || f["--icmpv6-type"] == "128":
		return "ping"
	case p == "icmp" || p == "ipv6-icmp":
		return "icmp"
	case f["--dport"] != "":
		return p + "/" + strings.ReplaceAll(f["--dport"], ":", "-")
	default:
		return p
	}
}

// peerName is the peer as the plan wrote it, with the address the rule
// holds when that was a name: "api.example.com (93.184.216.34)".
func peerName(prefix, comment string) string {
	addr := strings.TrimSuffix(strings.TrimSuffix(prefix, "/32"), "/128")
	i := strings.LastIndex(comment, ": ")
	if i < 0 {
		return addr
	}
	written := comment[i+2:]
	if written == addr || written == prefix || comment == commentDNS || comment == commentMLD || serviceNames[comment] != "" {
		return addr
	}
	return written + " (" + addr + ")"
}
