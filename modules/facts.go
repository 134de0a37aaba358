package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/piwall/piwall/modules/firewall"
)

// Facts are what piwall knows of a host, all gathered in one round trip by
// FactsScript and read by ParseFacts. Nothing else is asked of the host
// before deciding what to change.
type Facts struct {
	UID      int
	Operator netip.Addr // the operator's address as the host sees it (SSH_CONNECTION)
	Self     netip.Addr // the host's address the operator reached
	SSHPort  int        // the port sshd answered on
	OS       string     // PRETTY_NAME of /etc/os-release
	Tools    map[string]bool
	Backend  string // "nf_tables", "legacy", or "" when no table is loaded
	Systemd  bool   // systemd is PID 1: the dead-man uses systemd-run
	// Live holds the rulesets of each family, parsed; LiveDigest the digest
	// of what iptables-save printed, as NormalizeSave makes it.
	Live       map[firewall.Family]*firewall.Ruleset
	LiveDigest map[firewall.Family]string
	Resolvers  []netip.Addr
	Generation int    // the current generation, 0 for none
	Lock       string // the lock file's content, "" when free
	Persisted  map[firewall.Family]string
	Names      map[string]firewall.Resolution
	NameErrors map[string]string
	// Generations are requested ones (rollback): number → family → text.
	Generations map[int]map[firewall.Family]string
	History     []Generation // with FactsRequest.History, oldest first
}

// NeedsIptables reports whether iptables must be installed first.
func (f *Facts) NeedsIptables() bool {
	return !f.Tools["iptables-restore"] || !f.Tools["ip6tables-restore"] || !f.Tools["netfilter-persistent"]
}

// Fingerprint identifies the host's state as the plan saw it: a saved plan
// is applied only to a host whose fingerprint is still the same.
func (f *Facts) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "v4 %s\nv6 %s\ngeneration %d\npersisted %s %s\n", f.LiveDigest[firewall.IPv4], f.LiveDigest[firewall.IPv6],
		f.Generation, f.Persisted[firewall.IPv4], f.Persisted[firewall.IPv6])
	return hex.EncodeToString(h.Sum(nil))
}

// Where piwall keeps its state on a host.
const (
	StateDir = "/var/lib/piwall"
	RulesV4  = "/etc/iptables/rules.v4"
	RulesV6  = "/etc/iptables/rules.v6"
)

// shellPrelude starts every script piwall runs on a host: a known PATH
// (/usr/sbin is not on a user's PATH on Debian) and the C locale, so output
// can be parsed.
const shellPrelude = `export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# normalize: iptables-save output without its comment lines and counters,
# the form piwall compares and digests.
normalize() { sed -e '/^#/d' -e 's/^\(:[^ ]* [^ ]*\) \[[0-9]*:[0-9]*\]$/\1 [0:0]/'; }
`

// FactsRequest says what to gather beyond the facts every run needs.
type FactsRequest struct {
	Names       []string // DNS names to resolve on the host
	Generations []int    // generations whose rulesets to read; Previous for the one before the current
	History     bool     // the metadata of every generation
}

// Previous in FactsRequest.Generations is the generation before the
// current one: where a plain rollback goes.
const Previous = -1

// FactsScript is the script that gathers a host's facts, run as root with
// the login shell's $SSH_CONNECTION as its first argument. Its output is
// sections, each headed by a line with marker, which ParseFacts reads.
func FactsScript(marker string, req FactsRequest) string {
	var b strings.Builder
	b.WriteString(shellPrelude)
	fmt.Fprintf(&b, "sec() { printf '%%s %%s\\n' %s \"$1\"; }\n", Quote(marker))
	b.WriteString(`sec uid; while read -r k v _; do if [ "$k" = Uid: ]; then echo "$v"; break; fi; done </proc/self/status
sec ssh; printf '%s\n' "${1:-}"
# show FILE: print FILE, if there is one, with builtins only: on a busy Pi
# every process costs.
show() { [ -f "$1" ] || return 0; while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done <"$1"; }
sec os; [ -f /etc/os-release ] && while IFS= read -r l || [ -n "$l" ]; do
  case "$l" in PRETTY_NAME=*) l=${l#*=}; l=${l#\"}; printf '%s\n' "${l%\"}" ;; esac
done </etc/os-release
sec tools
for t in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore netfilter-persistent systemd-run apt-get getent; do
  command -v "$t" >/dev/null 2>&1 && echo "$t"
done
sec systemd; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi
# The live rules as iptables-save prints them: piwall normalizes and
# digests them (NormalizeSave) as prepare does the file it saves. stderr
# apart: a warning must not become part of the rules.
for fam in 4 6; do
  save=iptables-save; [ $fam = 6 ] && save=ip6tables-save
  sec "v$fam"
  if command -v $save >/dev/null 2>&1; then
    $save 2>/dev/null || { sec "v$fam-error"; $save 2>&1 >/dev/null; }
  fi
done
sec resolv; show /etc/resolv.conf
`)
	fmt.Fprintf(&b, "sec generation; show %s/current\n", StateDir)
	fmt.Fprintf(&b, "sec lock; show %s/lock\n", StateDir)
	// Both persisted files' digests from one sha256sum, "none" for a missing one.
	fmt.Fprintf(&b, `sec persisted
persisted() {
  p4=none p6=none
  set -- $(sha256sum %[1]s %[2]s 2>/dev/null)
  while [ $# -ge 2 ]; do case "$2" in %[1]s) p4=$1 ;; %[2]s) p6=$1 ;; esac; shift 2; done
  printf '%%s\n%%s\n' "$p4" "$p6"
}
persisted
`, RulesV4, RulesV6)
	for _, n := range req.Names {
		fmt.Fprintf(&b, "sec name; printf '%%s\\n' %s; getent ahosts %s || echo \"error $?\"\n", Quote(n), Quote(n))
	}
	for _, g := range req.Generations {
		if g == Previous {
			fmt.Fprintf(&b, "g=$(( $(cat %s/current 2>/dev/null || echo 1) - 1 ))\n", StateDir)
		} else {
			fmt.Fprintf(&b, "g=%d\n", g)
		}
		for _, fam := range []string{"v4", "v6"} {
			fmt.Fprintf(&b, "sec generation-%s; echo \"$g\"; cat %s/generations/$(printf %%04d \"$g\").%s 2>/dev/null || echo error\n", fam, StateDir, fam)
		}
	}
	if req.History {
		fmt.Fprintf(&b, "sec history; for f in %s/generations/*.json; do [ -f \"$f\" ] && cat \"$f\"; done\n", StateDir)
	}
	b.WriteString("sec end\n")
	return b.String()
}

// ParseFacts reads the output of FactsScript.
func ParseFacts(out, marker string) (*Facts, error) {
	f := &Facts{
		Tools:       map[string]bool{},
		Live:        map[firewall.Family]*firewall.Ruleset{},
		LiveDigest:  map[firewall.Family]string{},
		Persisted:   map[firewall.Family]string{},
		Names:       map[string]firewall.Resolution{},
		NameErrors:  map[string]string{},
		Generations: map[int]map[firewall.Family]string{},
	}
	sections, err := splitSections(out, marker)
	if err != nil {
		return nil, err
	}
	// A cut output is told as such, not as whatever its last section,
	// cut short, fails to parse as.
	complete := false
	for _, s := range sections {
		complete = complete || s.name == "end"
	}
	if !complete {
		return nil, fmt.Errorf("facts: the output ends early (the script did not finish)")
	}
	live := map[string][]string{}
	for _, s := range sections {
		body := strings.Join(s.lines, "\n")
		switch s.name {
		case "uid":
			f.UID, err = strconv.Atoi(strings.TrimSpace(body))
		case "ssh":
			err = f.parseSSHConnection(strings.TrimSpace(body))
		case "os":
			f.OS = strings.TrimSpace(body)
		case "tools":
			for _, t := range s.lines {
				if t = strings.TrimSpace(t); t != "" {
					f.Tools[t] = true
				}
			}
		case "systemd":
			f.Systemd = strings.TrimSpace(body) == "yes"
		case "v4", "v6", "v4-error", "v6-error":
			live[s.name] = s.lines
		case "resolv":
			f.Resolvers = firewall.ParseResolvConf(body)
		case "generation":
			if g := strings.TrimSpace(body); g != "" {
				f.Generation, err = strconv.Atoi(g)
			}
		case "lock":
			f.Lock = strings.TrimSpace(body)
		case "persisted":
			if len(s.lines) >= 2 {
				f.Persisted[firewall.IPv4], f.Persisted[firewall.IPv6] = strings.TrimSpace(s.lines[0]), strings.TrimSpace(s.lines[1])
			}
		case "name":
			f.parseName(s.lines)
		case "generation-v4", "generation-v6":
			err = f.parseGeneration(s)
		case "history":
			for _, line := range s.lines {
				if strings.TrimSpace(line) == "" {
					continue
				}
				g, gerr := ParseGeneration([]byte(line))
				if gerr != nil {
					return nil, fmt.Errorf("facts, section history: %w", gerr)
				}
				f.History = append(f.History, g)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("facts, section %s: %w", s.name, err)
		}
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if err := f.parseLive(fam, live); err != nil {
			return nil, fmt.Errorf("facts, %w", err)
		}
	}
	return f, nil
}

type factSection struct {
	name  string
	lines []string
}

func splitSections(out, marker string) ([]factSection, error) {
	var sections []factSection
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, marker+" "); ok {
			sections = append(sections, factSection{name: name})
			continue
		}
		if len(sections) == 0 {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("facts: unexpected output before the first section: %q", line)
		}
		sections[len(sections)-1].lines = append(sections[len(sections)-1].lines, line)
	}
	// Drop the empty last line each section has from the final newline.
	for i := range sections {
		l := sections[i].lines
		for len(l) > 0 && l[len(l)-1] == "" {
			l = l[:len(l)-1]
		}
		sections[i].lines = l
	}
	return sections, nil
}

// parseSSHConnection reads "client_ip client_port server_ip server_port".
func (f *Facts) parseSSHConnection(s string) error {
	fields := strings.Fields(s)
	if len(fields) != 4 {
		return fmt.Errorf("SSH_CONNECTION is %q, want four fields", s)
	}
	var err error
	if f.Operator, err = netip.ParseAddr(fields[0]); err != nil {
		return err
	}
	if f.Self, err = netip.ParseAddr(fields[2]); err != nil {
		return err
	}
	f.Operator, f.Self = f.Operator.Unmap(), f.Self.Unmap()
	if f.SSHPort, err = strconv.Atoi(fields[3]); err != nil {
		return err
	}
	if f.SSHPort < 1 || f.SSHPort > 65535 {
		return fmt.Errorf("SSH_CONNECTION is %q: port %d out of range", s, f.SSHPort)
	}
	return nil
}

// parseLive reads a family's live rules, as iptables-save printed them,
// and the error it printed if it failed.
func (f *Facts) parseLive(fam firewall.Family, live map[string][]string) error {
	sec, save := "v4", "iptables-save"
	if fam == firewall.IPv6 {
		sec, save = "v6", "ip6tables-save"
	}
	if stderr, failed := live[sec+"-error"]; failed {
		return fmt.Errorf("section %s: %s failed: %s", sec, save, strings.Join(stderr, " "))
	}
	lines, ok := live[sec]
	if !ok {
		return nil
	}
	raw := strings.Join(lines, "\n")
	if f.Backend == "" {
		f.Backend = saveBackend(raw)
	}
	text := NormalizeSave(raw)
	sum := sha256.Sum256([]byte(text))
	f.LiveDigest[fam] = hex.EncodeToString(sum[:])
	rs, err := firewall.Parse(text)
	if err != nil {
		return fmt.Errorf("section %s: %w", sec, err)
	}
	f.Live[fam] = rs
	return nil
}

// saveBackend tells the backend from the header iptables-save prints with
// its first table: "# Generated by iptables-save v1.8.9 (nf_tables) on
// ...", without "(nf_tables)" for legacy. No table loaded, no header: "".
func saveBackend(raw string) string {
	for line := range strings.Lines(raw) {
		if rest, ok := strings.CutPrefix(line, "# Generated by "); ok {
			if strings.Contains(rest, "(nf_tables)") {
				return "nf_tables"
			}
			return "legacy"
		}
	}
	return ""
}

// chainCounters is a chain line with its packet and byte counters.
var chainCounters = regexp.MustCompile(`^(:[^ ]* [^ ]*) \[[0-9]*:[0-9]*\]$`)

// NormalizeSave is the form of iptables-save's output that piwall compares
// and digests: without comment lines, chain counters zeroed, one newline
// at the end. It is what the scripts' normalize (sed) makes of
// "$(iptables-save)", byte for byte: prepare digests the rules it saves
// that way, and the plan's digest of the facts must be the same.
func NormalizeSave(raw string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(raw, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		b.WriteString(chainCounters.ReplaceAllString(line, "$1 [0:0]"))
		b.WriteByte('\n')
	}
	return b.String()
}

// parseName reads a name and `getent ahosts` lines: "ADDR STREAM canonical",
// then "ADDR DGRAM", ...; the canonical name shows the end of a CNAME chain.
func (f *Facts) parseName(lines []string) {
	if len(lines) == 0 {
		return
	}
	name := strings.TrimSpace(lines[0])
	r := firewall.Resolution{Name: name}
	seen := map[netip.Addr]bool{}
	for i, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) >= 1 && fields[0] == "error" {
			f.NameErrors[name] = "does not resolve on the host (getent ahosts " + strings.Join(fields[1:], " ") + ")"
			return
		}
		if len(fields) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			r.Addrs = append(r.Addrs, a)
		}
		if i == 0 && len(fields) >= 3 && !strings.EqualFold(strings.TrimSuffix(fields[2], "."), name) {
			r.CNAMEs = []string{strings.TrimSuffix(fields[2], ".")}
		}
	}
	sort.SliceStable(r.Addrs, func(i, j int) bool {
		if r.Addrs[i].Is4() != r.Addrs[j].Is4() {
			return r.Addrs[i].Is4()
		}
		return r.Addrs[i].Less(r.Addrs[j])
	})
	if len(r.Addrs) == 0 {
		f.NameErrors[name] = "has no addresses on the host"
		return
	}
	f.Names[name] = r
}

func (f *Facts) parseGeneration(s factSection) error {
	if len(s.lines) == 0 {
		return fmt.Errorf("empty")
	}
	n, err := strconv.Atoi(strings.TrimSpace(s.lines[0]))
	if err != nil {
		return err
	}
	body := strings.Join(s.lines[1:], "\n")
	if strings.TrimSpace(body) == "error" || strings.HasSuffix(body, "\nerror") {
		return nil // not on the host; Rollback says so
	}
	fam := firewall.IPv4
	if s.name == "generation-v6" {
		fam = firewall.IPv6
	}
	if f.Generations[n] == nil {
		f.Generations[n] = map[firewall.Family]string{}
	}
	f.Generations[n][fam] = body + "\n"
	return nil
}
