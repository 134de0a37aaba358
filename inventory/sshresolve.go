package inventory

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SSHHost is what ssh_config says of one host, after OpenSSH's defaults.
// The fields hold what ssh -G prints: HostName expanded and lowercased,
// HostKeyAlias lowercased, UserKnownHostsFile and IdentityAgent expanded,
// while IdentityFile, CertificateFile, GlobalKnownHostsFile and
// ProxyCommand are as written (ssh expands those only when it uses them;
// Target holds them expanded).
type SSHHost struct {
	Alias                 string // the host as given (%n)
	HostName              string
	User                  string
	Port                  int
	IdentityFiles         []string
	CertificateFiles      []string
	ProxyJump             string // as ssh -G prints it; "" for none
	ProxyCommand          string // "" for none
	UserKnownHostsFiles   []string
	GlobalKnownHostsFiles []string
	HostKeyAlias          string
	IdentitiesOnly        bool
	IdentityAgent         string // "" unset: SSH_AUTH_SOCK; "none": no agent
	StrictHostKeyChecking string // yes, ask, accept-new, no (off: no)
	HashKnownHosts        bool
	ConnectTimeout        time.Duration // 0: unset
	// Algorithms are the lists ssh would use, OpenSSH's defaults where
	// ssh_config says nothing; SetAlgorithms only those it sets (the
	// others nil), which piwall uses, its own defaults being those of
	// golang.org/x/crypto/ssh.
	Algorithms, SetAlgorithms Algorithms

	tokens map[byte]string // the values of the %-tokens for this host
}

// SSHOverrides are settings given before ssh_config is read, as ssh's
// -l, -p and -J: they win over the file's, and Match and the tokens see
// them.
type SSHOverrides struct {
	User      string
	Port      int
	ProxyJump string // "none": no jump whatever the file says
}

// keyword is how piwall treats an ssh_config keyword OpenSSH knows.
type keyword struct {
	single bool // takes exactly one value
	// refused, when set, is an error for a keyword that would change
	// how piwall connects and that it does not implement; noop lists the
	// values that change nothing (the default), which are accepted.
	refused string
	noop    []string
}

// keywords lists every keyword of OpenSSH 9.2's ssh_config (and a few of
// other builds: Debian's GSSAPI key exchange, macOS's UseKeychain). Those
// not read nor refused do not change where or how the connection is made
// for piwall (forwarding, multiplexing, logging, passwords) and are
// ignored, as are the deprecated ones ssh ignores with a warning.
var keywords = map[string]keyword{
	// Read by Resolve.
	"host": {}, "match": {}, "include": {}, "ignoreunknown": {single: true},
	"hostname": {single: true}, "user": {single: true}, "port": {single: true},
	"identityfile": {single: true}, "certificatefile": {single: true},
	"proxycommand": {}, "proxyjump": {},
	"userknownhostsfile": {}, "globalknownhostsfile": {}, "hostkeyalias": {single: true},
	"identitiesonly": {single: true}, "identityagent": {single: true},
	"stricthostkeychecking": {single: true}, "hashknownhosts": {single: true},
	"connecttimeout": {single: true},
	"ciphers":        {single: true}, "macs": {single: true}, "kexalgorithms": {single: true},
	"hostkeyalgorithms": {single: true}, "pubkeyacceptedalgorithms": {single: true},
	"pubkeyacceptedkeytypes": {single: true}, // the old name of PubkeyAcceptedAlgorithms

	// They would change the connection; piwall does not implement them.
	"addressfamily":        {refused: "piwall connects over IPv4 or IPv6, as the address resolves", noop: []string{"any"}},
	"bindaddress":          {refused: "piwall does not bind to a local address"},
	"bindinterface":        {refused: "piwall does not bind to a local interface"},
	"canonicalizehostname": {refused: "piwall does not canonicalize host names", noop: []string{"no"}},
	"knownhostscommand":    {refused: "piwall reads host keys from known_hosts files only"},
	"revokedhostkeys":      {refused: "piwall does not check revoked host keys"},
	"pkcs11provider":       {refused: "piwall cannot use PKCS#11 keys (add them to ssh-agent)", noop: []string{"none"}},
	"smartcarddevice":      {refused: "piwall cannot use smartcard keys (add them to ssh-agent)"},
	"proxyusefdpass":       {refused: "piwall reads the connection from ProxyCommand's stdout", noop: []string{"no"}},
	"pubkeyauthentication": {refused: "piwall logs in with public keys only", noop: []string{"yes", "unbound", "host-bound"}},
	"verifyhostkeydns":     {refused: "piwall does not trust SSHFP records", noop: []string{"no"}},

	// Ignored: they do not change the connection piwall makes.
	// CASignatureAlgorithms restricts the CAs of host certificates, which
	// piwall does not accept.
	"casignaturealgorithms": {},
	"addkeystoagent":        {}, "batchmode": {}, "canonicaldomains": {}, "canonicalizefallbacklocal": {},
	"canonicalizemaxdots": {}, "canonicalizepermittedcnames": {}, "challengeresponseauthentication": {},
	"channeltimeout": {}, "checkhostip": {}, "clearallforwardings": {}, "compression": {},
	"connectionattempts": {}, "controlmaster": {}, "controlpath": {}, "controlpersist": {},
	"dynamicforward": {}, "enableescapecommandline": {}, "enablesshkeysign": {}, "escapechar": {},
	"exitonforwardfailure": {}, "fingerprinthash": {}, "forkafterauthentication": {}, "forwardagent": {},
	"forwardx11": {}, "forwardx11timeout": {}, "forwardx11trusted": {}, "gatewayports": {},
	"gssapiauthentication": {}, "gssapidelegatecredentials": {}, "gssapikeyexchange": {},
	"gssapiclientidentity": {}, "gssapiserveridentity": {}, "gssapirenewalforcesrekey": {},
	"gssapitrustdns": {}, "gssapikexalgorithms": {}, "hostbasedauthentication": {},
	"hostbasedacceptedalgorithms": {}, "hostbasedkeytypes": {}, "ipqos": {},
	"kbdinteractiveauthentication": {}, "kbdinteractivedevices": {}, "localcommand": {},
	"localforward": {}, "loglevel": {}, "logverbose": {}, "nohostauthenticationforlocalhost": {},
	"numberofpasswordprompts": {}, "passwordauthentication": {}, "permitlocalcommand": {},
	"permitremoteopen": {}, "preferredauthentications": {}, "rekeylimit": {}, "remotecommand": {},
	"remoteforward": {}, "requesttty": {}, "requiredrsasize": {}, "securitykeyprovider": {},
	"sendenv": {}, "serveralivecountmax": {}, "serveraliveinterval": {}, "sessiontype": {},
	"setenv": {}, "stdinnull": {}, "streamlocalbindmask": {}, "streamlocalbindunlink": {},
	"syslogfacility": {}, "tcpkeepalive": {}, "tunnel": {}, "tunneldevice": {}, "updatehostkeys": {},
	"visualhostkey": {}, "xauthlocation": {}, "usekeychain": {},
	// Deprecated or unsupported: ssh warns and goes on.
	"afstokenpassing": {}, "cipher": {}, "compressionlevel": {}, "dsaauthentication": {},
	"fallbacktorsh": {}, "globalknownhostsfile2": {}, "kerberosauthentication": {},
	"kerberostgtpassing": {}, "protocol": {}, "rhostsauthentication": {}, "rhostsrsaauthentication": {},
	"rsaauthentication": {}, "skeyauthentication": {}, "tisauthentication": {}, "useprivilegedport": {},
	"userknownhostsfile2": {}, "useroaming": {}, "usersh": {},
}

// maxJumpDepth bounds the ProxyJump of a jump host's own ProxyJump: a
// configuration whose hosts jump through each other would never end.
const maxJumpDepth = 8

// Resolve evaluates the configuration for a host alias, as ssh -G does:
// Host and Match sections, Include, first value wins, a second pass when
// a Match final asks for it, then OpenSSH's defaults. Errors name the
// file and line: an unknown keyword, a keyword piwall does not implement,
// Match exec, a token a keyword does not take.
func (c *SSHConfig) Resolve(alias string, env Env, over SSHOverrides) (*SSHHost, error) {
	e := &evaluation{env: env, alias: alias, host: alias, over: over,
		vals: map[string]string{}, where: map[string]string{}, lists: map[string][]string{}, refused: map[string]bool{}}
	if over.User != "" {
		e.vals["user"] = over.User
	}
	if over.Port != 0 {
		e.port = over.Port
	}
	if over.ProxyJump != "" {
		if err := e.setProxyJump(over.ProxyJump, true); err != nil {
			return nil, fmt.Errorf("ProxyJump %q: %w", over.ProxyJump, err)
		}
	}
	if err := e.files(c); err != nil {
		return nil, err
	}
	// As ssh.c: HostName's %h is the alias; the result lowercased, an
	// address written the canonical way.
	hostname := alias
	if v, ok := e.vals["hostname"]; ok {
		var err error
		if hostname, err = expandTokens(v, "h", map[byte]string{'h': alias}); err != nil {
			return nil, fmt.Errorf("%s: HostName: %w", e.where["hostname"], err)
		}
	}
	hostname = canonicalHost(hostname)
	if e.wantFinal {
		e.final, e.host = true, hostname
		e.vals["hostname"] = hostname
		if err := e.files(c); err != nil {
			return nil, err
		}
	}
	return e.finish(hostname)
}

// canonicalHost lowercases a host name, and writes an address the way
// getnameinfo does.
func canonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	return strings.ToLower(h)
}

// evaluation is one Resolve: the values set so far (first wins).
type evaluation struct {
	env       Env
	alias     string // the host as given: Match originalhost, %n
	host      string // what Host patterns match: the alias, the host name in the final pass
	over      SSHOverrides
	final     bool
	wantFinal bool

	vals  map[string]string // single-valued keywords, as written
	where map[string]string // file:line of each
	lists map[string][]string
	port  int

	identityFiles, certificateFiles []string
	proxySet                        bool   // ProxyJump or ProxyCommand seen: later ones are ignored
	proxyJump, proxyCommand         string // the one that won, as written
	refused                         map[string]bool
}

func (e *evaluation) files(c *SSHConfig) error {
	if c == nil {
		return nil
	}
	for _, f := range c.files {
		if err := e.file(f, true, false); err != nil {
			return err
		}
	}
	return nil
}

// file evaluates one file's lines, as read_config_file_depth does: active
// says whether lines before the first Host or Match apply; neverMatch is
// an included file read from an inactive section, where nothing applies.
func (e *evaluation) file(f *configFile, active, neverMatch bool) error {
	for _, l := range f.lines {
		switch l.key {
		case "host":
			active = !neverMatch && matchHost(e.host, l.args)
			continue
		case "match":
			ok, err := e.match(l)
			if err != nil {
				return err
			}
			active = !neverMatch && ok
			continue
		case "include":
			for _, sub := range l.include {
				if err := e.file(sub, active, neverMatch || !active); err != nil {
					return err
				}
			}
			continue
		}
		if err := e.line(l, active); err != nil {
			return err
		}
	}
	return nil
}

// matchHost reports whether a Host line's patterns take host: one matches
// and no negated one does.
func matchHost(host string, patterns []string) bool {
	ok := false
	for _, p := range patterns {
		if neg := strings.HasPrefix(p, "!"); neg {
			if matchPattern(host, p[1:]) {
				return false
			}
		} else if matchPattern(host, p) {
			ok = true
		}
	}
	return ok
}

// matchPattern is OpenSSH's match_pattern: * any run of characters, ?
// one character, everything else itself ([ too).
func matchPattern(s, p string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if matchPattern(s[i:], p) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, p = s[1:], p[1:]
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
			s, p = s[1:], p[1:]
		}
	}
	return s == ""
}

// matchList is OpenSSH's match_pattern_list: a comma-separated list of
// patterns, ! negating one; a negated match wins. lower lowercases the
// patterns and s (host names: ssh compares them in lowercase).
func matchList(s, list string, lower bool) bool {
	if lower {
		s = strings.ToLower(s)
	}
	ok := false
	for _, p := range strings.Split(list, ",") {
		if lower {
			p = strings.ToLower(p)
		}
		if neg := strings.HasPrefix(p, "!"); neg {
			if matchPattern(s, p[1:]) {
				return false
			}
		} else if matchPattern(s, p) {
			ok = true
		}
	}
	return ok
}

// match evaluates a Match line's criteria, as readconf.c's
// match_cfg_line in OpenSSH 9.2.
func (e *evaluation) match(l configLine) (bool, error) {
	words := matchWords(l.rest)
	result, attributes := true, 0
	for i := 0; i < len(words); i++ {
		attr := words[i]
		if strings.HasPrefix(attr, "#") {
			break
		}
		neg := strings.HasPrefix(attr, "!")
		attr = strings.ToLower(strings.TrimPrefix(attr, "!"))
		if attr == "all" {
			if attributes > 1 || (i+1 < len(words) && !strings.HasPrefix(words[i+1], "#")) {
				return false, fmt.Errorf("%s: Match all cannot be combined with other criteria", l.where())
			}
			if result {
				result = !neg
			}
			return result, nil
		}
		attributes++
		if attr == "canonical" || attr == "final" {
			// ssh 9.2 makes a second pass for any Match final it reads,
			// negated or not, active or not; Match canonical alone makes
			// none.
			if attr == "final" {
				e.wantFinal = true
			}
			if e.final == neg {
				result = false
			}
			continue
		}
		if i+1 >= len(words) || strings.HasPrefix(words[i+1], "#") {
			return false, fmt.Errorf("%s: Match %s needs an argument", l.where(), attr)
		}
		i++
		arg := words[i]
		var ok bool
		switch attr {
		case "host":
			h := e.host
			if !e.final {
				h = e.alias
				if v, set := e.vals["hostname"]; set {
					h, _ = expandTokens(v, "h", map[byte]string{'h': e.alias})
				}
			}
			ok = matchList(h, arg, true)
		case "originalhost":
			ok = matchList(e.alias, arg, true)
		case "user":
			u := e.vals["user"]
			if u == "" {
				u = e.env.LocalUser
			}
			ok = matchList(u, arg, false)
		case "localuser":
			ok = matchList(e.env.LocalUser, arg, false)
		case "exec":
			if !result {
				continue // ssh skips the command when an earlier criterion failed
			}
			return false, fmt.Errorf("%s: Match exec is not supported: piwall does not run commands from ssh_config to choose a host's settings (use Match host, user or final)", l.where())
		default:
			return false, fmt.Errorf("%s: unsupported Match criterion %q", l.where(), attr)
		}
		if ok == neg {
			result = false
		}
	}
	if attributes == 0 {
		return false, fmt.Errorf("%s: Match needs one or more criteria", l.where())
	}
	return result, nil
}

// matchWords splits a Match line as strdelim does: whitespace, and quotes
// around a word.
func matchWords(s string) []string {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out
		}
		if s[0] == '"' {
			if j := strings.IndexByte(s[1:], '"'); j >= 0 {
				out, s = append(out, s[1:j+1]), s[j+2:]
				continue
			}
		}
		j := strings.IndexAny(s, " \t")
		if j < 0 {
			j = len(s)
		}
		out, s = append(out, s[:j]), s[j:]
	}
}

// line applies one keyword line.
func (e *evaluation) line(l configLine, active bool) error {
	k, known := keywords[l.key]
	if !known {
		if p, ok := e.vals["ignoreunknown"]; ok && matchList(l.key, strings.ToLower(p), false) {
			return nil
		}
		return fmt.Errorf("%s: unknown keyword %s (ssh refuses it too; IgnoreUnknown %s lets both pass)", l.where(), l.key, l.key)
	}
	v := l.args[0]
	// Values that ssh checks in every section, active or not.
	switch l.key {
	case "port":
		if _, err := parsePort(v); err != nil {
			return fmt.Errorf("%s: Port: %w", l.where(), err)
		}
	case "identitiesonly", "hashknownhosts":
		if _, err := yesNo(v); err != nil {
			return fmt.Errorf("%s: %s: %w", l.where(), l.key, err)
		}
	case "stricthostkeychecking":
		switch strings.ToLower(v) {
		case "yes", "no", "ask", "off", "accept-new", "true", "false":
		default:
			return fmt.Errorf("%s: StrictHostKeyChecking: bad value %q", l.where(), v)
		}
	case "connecttimeout":
		if _, err := parseSeconds(v); err != nil {
			return fmt.Errorf("%s: ConnectTimeout: %w", l.where(), err)
		}
	case "proxyjump":
		return e.proxyJumpLine(l, active)
	case "pubkeyacceptedkeytypes":
		l.key = "pubkeyacceptedalgorithms"
		fallthrough
	case "ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms":
		if err := checkAlgorithms(l.key, v); err != nil {
			return fmt.Errorf("%s: %w", l.where(), err)
		}
	}
	if !active {
		return nil
	}
	if k.refused != "" {
		if e.refused[l.key] {
			return nil
		}
		e.refused[l.key] = true
		for _, ok := range k.noop {
			if strings.EqualFold(v, ok) {
				return nil
			}
		}
		return fmt.Errorf("%s: %s %s is not supported: %s (keep it to the hosts that need it, in a Host or Match section that piwall's hosts do not match)", l.where(), l.key, strings.Join(l.args, " "), k.refused)
	}
	switch l.key {
	case "identityfile":
		e.identityFiles = appendNew(e.identityFiles, v)
	case "certificatefile":
		e.certificateFiles = appendNew(e.certificateFiles, v)
	case "userknownhostsfile", "globalknownhostsfile":
		if _, ok := e.lists[l.key]; !ok {
			e.lists[l.key] = l.args
			e.where[l.key] = l.where()
		}
	case "proxycommand":
		if !e.proxySet {
			e.proxySet, e.proxyCommand = true, l.rest
			e.where["proxycommand"] = l.where()
		}
	case "port":
		if e.port == 0 {
			e.port, _ = parsePort(v)
		}
	default:
		if _, ok := e.vals[l.key]; !ok {
			e.vals[l.key] = v
			e.where[l.key] = l.where()
		}
	}
	return nil
}

func appendNew(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// proxyJumpLine reads ProxyJump as parse_jump does: the raw rest of the
// line, a comment cut off; every hop's syntax checked.
func (e *evaluation) proxyJumpLine(l configLine, active bool) error {
	s := l.rest
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, " \t")
	if err := e.setProxyJump(s, active); err != nil {
		return fmt.Errorf("%s: ProxyJump %q: %w", l.where(), s, err)
	}
	if active && e.where["proxyjump"] == "" {
		e.where["proxyjump"] = l.where()
	}
	return nil
}

func (e *evaluation) setProxyJump(s string, active bool) error {
	if !strings.EqualFold(s, "none") {
		for _, hop := range strings.Split(s, ",") {
			if _, err := ParseJumpHop(hop); err != nil {
				return err
			}
		}
	}
	if active && !e.proxySet {
		e.proxySet, e.proxyJump = true, s
	}
	return nil
}

// JumpHop is one host of a ProxyJump: [user@]host[:port] or
// ssh://[user@]host[:port].
type JumpHop struct {
	User string
	Host string
	Port int // 0: unset
}

// ParseJumpHop reads one ProxyJump host, as OpenSSH's parse_ssh_uri and
// parse_user_host_port do.
func ParseJumpHop(s string) (JumpHop, error) {
	var h JumpHop
	if rest, ok := strings.CutPrefix(s, "ssh://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			if rest[i:] != "/" {
				return h, fmt.Errorf("%q: a path is not allowed", s)
			}
			rest = rest[:i]
		}
		s = rest
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		if i == 0 {
			return h, fmt.Errorf("%q: empty user", s)
		}
		h.User, s = s[:i], s[i+1:]
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		j := strings.IndexByte(s, ']')
		if j < 0 {
			return h, fmt.Errorf("%q: no closing ]", s)
		}
		host, port = s[1:j], s[j+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return h, fmt.Errorf("%q: bad port", s)
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.IndexAny(s, ":/"); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	if host == "" {
		return h, fmt.Errorf("%q: no host", s)
	}
	h.Host = host
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return h, fmt.Errorf("%q: %w", s, err)
		}
		h.Port = p
	}
	return h, nil
}

// String writes the hop as ssh -G prints the last one: a numeric or
// IPv6 host in brackets.
func (h JumpHop) String() string {
	s := h.Host
	if strings.Contains(s, ":") || strings.Trim(s, "0123456789.") == "" {
		s = "[" + s + "]"
	}
	if h.User != "" {
		s = h.User + "@" + s
	}
	if h.Port > 0 {
		s += ":" + strconv.Itoa(h.Port)
	}
	return s
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		if n, err = net.LookupPort("tcp", s); err != nil {
			return 0, fmt.Errorf("bad port %q", s)
		}
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return n, nil
}

func yesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("bad value %q: yes or no", s)
}

// parseSeconds reads an OpenSSH time: seconds, or a sum like 1m30s.
func parseSeconds(s string) (time.Duration, error) {
	if strings.EqualFold(s, "none") {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(strings.ToLower(s))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return d, nil
}

// finish fills in OpenSSH's defaults and expands what ssh -G prints
// expanded.
func (e *evaluation) finish(hostname string) (*SSHHost, error) {
	h := &SSHHost{Alias: e.alias, HostName: hostname, User: e.vals["user"], Port: e.port}
	if h.User == "" {
		h.User = e.env.LocalUser
	}
	if h.Port == 0 {
		h.Port = 22
	}
	h.HostKeyAlias = strings.ToLower(e.vals["hostkeyalias"])
	h.IdentitiesOnly, _ = yesNo(e.vals["identitiesonly"])
	h.HashKnownHosts, _ = yesNo(e.vals["hashknownhosts"])
	h.StrictHostKeyChecking = strings.ToLower(e.vals["stricthostkeychecking"])
	switch h.StrictHostKeyChecking {
	case "":
		h.StrictHostKeyChecking = "ask"
	case "off", "false":
		h.StrictHostKeyChecking = "no"
	case "true":
		h.StrictHostKeyChecking = "yes"
	}
	h.ConnectTimeout, _ = parseSeconds(e.vals["connecttimeout"])
	h.IdentityFiles = e.identityFiles
	if len(h.IdentityFiles) == 0 {
		for _, n := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"} {
			h.IdentityFiles = append(h.IdentityFiles, "~/.ssh/"+n)
		}
	}
	for key, l := range algorithmLists {
		v := e.vals[key]
		list, err := assembleAlgorithms(key, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.where[key], err)
		}
		*l.field(&h.Algorithms) = list
		if v != "" {
			*l.field(&h.SetAlgorithms) = list
		}
	}
	h.CertificateFiles = e.certificateFiles
	h.GlobalKnownHostsFiles = e.lists["globalknownhostsfile"]
	if h.GlobalKnownHostsFiles == nil {
		h.GlobalKnownHostsFiles = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	}
	if !strings.EqualFold(e.proxyJump, "none") && e.proxyJump != "" {
		h.ProxyJump = jumpString(e.proxyJump)
	}
	if !strings.EqualFold(e.proxyCommand, "none") {
		h.ProxyCommand = e.proxyCommand
	}
	keyAlias := h.HostKeyAlias
	if keyAlias == "" {
		keyAlias = e.alias
	}
	port := strconv.Itoa(h.Port)
	sum := sha1.Sum([]byte(e.env.localHost() + hostname + port + h.User))
	h.tokens = map[byte]string{
		'%': "%", 'C': hex.EncodeToString(sum[:]), 'd': e.env.Home, 'h': hostname,
		'i': e.env.uid(), 'k': keyAlias, 'L': strings.SplitN(e.env.localHost(), ".", 2)[0],
		'l': e.env.localHost(), 'n': e.alias, 'p': port, 'r': h.User, 'u': e.env.LocalUser,
	}
	files := e.lists["userknownhostsfile"]
	if files == nil {
		files = []string{"~/.ssh/known_hosts", "~/.ssh/known_hosts2"}
	}
	for _, f := range files {
		x, err := h.expandPath(f, e.env)
		if err != nil {
			return nil, fmt.Errorf("%s: UserKnownHostsFile: %w", e.where["userknownhostsfile"], err)
		}
		h.UserKnownHostsFiles = append(h.UserKnownHostsFiles, x)
	}
	if v, ok := e.vals["identityagent"]; ok {
		x, err := h.expandPath(v, e.env)
		if err != nil {
			return nil, fmt.Errorf("%s: IdentityAgent: %w", e.where["identityagent"], err)
		}
		h.IdentityAgent = x
	}
	return h, nil
}

// jumpString writes a ProxyJump as ssh -G does: the hops before the last
// as written, the last one parsed and written again.
func jumpString(s string) string {
	extra, last := "", s
	if i := strings.LastIndexByte(s, ','); i >= 0 {
		extra, last = s[:i+1], s[i+1:]
	}
	h, err := ParseJumpHop(last)
	if err != nil {
		return s
	}
	return extra + h.String()
}

// expandPath expands a leading ~, then ${VAR} and the %-tokens of
// IdentityFile, CertificateFile, UserKnownHostsFile and IdentityAgent, as
// ssh.c does (tilde_expand_filename, then
// default_client_percent_dollar_expand).
func (h *SSHHost) expandPath(p string, env Env) (string, error) {
	p, err := expandTilde(p, env.Home)
	if err != nil {
		return "", err
	}
	if p, err = expandEnv(p, env.getenv); err != nil {
		return "", err
	}
	return expandTokens(p, "%CdhikLlnpru", h.tokens)
}

// ExpandProxyCommand expands the tokens ProxyCommand takes: %%, %h, %n,
// %p and %r.
func (h *SSHHost) ExpandProxyCommand() (string, error) {
	if h.ProxyCommand == "" {
		return "", nil
	}
	return expandTokens(h.ProxyCommand, "%hnpr", h.tokens)
}

// expandTilde expands ~ and ~user at the start of a path.
func expandTilde(p, home string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		return p, nil
	}
	name, rest, _ := strings.Cut(p[1:], "/")
	if name == "" {
		if rest == "" && !strings.HasSuffix(p, "/") {
			return home, nil
		}
		return filepath.Join(home, rest), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("%s: no user %s", p, name)
	}
	return filepath.Join(u.HomeDir, rest), nil
}

// expandEnv expands ${NAME}; an unset variable is an error, as in ssh.
func expandEnv(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("%q: ${ without }", s)
		}
		name := s[i+2 : i+j]
		v, ok := getenv(name)
		if !ok {
			return "", fmt.Errorf("environment variable ${%s} is not set", name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+1:]
	}
}

// expandTokens expands the %-tokens of allowed in s; any other is an
// error, as ssh's percent_expand makes it.
func expandTokens(s, allowed string, vals map[byte]string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%q ends with a lone %%", s)
		}
		i++
		c := s[i]
		if c == '%' {
			b.WriteByte('%')
			continue
		}
		if !strings.ContainsRune(allowed, rune(c)) {
			return "", fmt.Errorf("%q: unknown token %%%c", s, c)
		}
		b.WriteString(vals[c])
	}
	return b.String(), nil
}

func (env Env) localHost() string {
	if env.LocalHost != "" {
		return env.LocalHost
	}
	h, _ := os.Hostname()
	return h
}

func (env Env) uid() string {
	if env.UID != "" {
		return env.UID
	}
	return strconv.Itoa(os.Getuid())
}

func (env Env) getenv(name string) (string, bool) {
	if env.Getenv != nil {
		return env.Getenv(name)
	}
	return os.LookupEnv(name)
}
