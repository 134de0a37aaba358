package ssh

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net"
	"os"
	"strings"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHosts is a parsed set of known_hosts files. x/crypto's callback
// scans every line of them for each lookup: with a fleet of 10,000 hosts
// in them, looking up every host's key costs 10,000² line matches, a third
// of the controller's CPU in a plan. The index holds the lines that name
// their hosts plainly (no hashed name, wildcard or negation), by name, and
// answers the lookups that need no other line at once: a key that a plain
// line holds for the host is accepted (as x/crypto would: any matching
// line with the key accepts it), and the key types of a host are read from
// the index when every line is plain. Anything else (an unknown or changed
// key, a certificate, a file with @revoked or @cert-authority lines) goes
// to x/crypto's callback, which says exactly what it always said.
type knownHosts struct {
	callback gossh.HostKeyCallback
	plain    map[hostPort][]gossh.PublicKey
	general  bool // some line has a hashed, wildcard or negated name
	markers  bool // some line is @revoked or @cert-authority
}

// hostPort is a host as a known_hosts line names it: [host]:port, or host
// alone for port 22.
type hostPort struct{ host, port string }

func readKnownHosts(files []string) (*knownHosts, error) {
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, err
	}
	db := &knownHosts{callback: cb, plain: map[hostPort][]gossh.PublicKey{}}
	for _, f := range files {
		if err := db.index(f); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// index adds the plain lines of file to the index, as x/crypto parses
// them: a line it would skip as malformed is not indexed either.
func (db *knownHosts) index(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.Trim(sc.Text(), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if strings.HasPrefix(fields[0], "@") {
			db.markers = true
			continue
		}
		if len(fields) < 3 {
			continue
		}
		blob, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil {
			continue
		}
		key, err := gossh.ParsePublicKey(blob)
		if err != nil || key.Type() != fields[1] {
			continue
		}
		if strings.HasPrefix(fields[0], "|") || strings.ContainsAny(fields[0], "*?!") {
			db.general = true
			continue
		}
		for _, p := range strings.Split(fields[0], ",") {
			if p == "" {
				continue
			}
			a, ok := patternAddr(p)
			if !ok {
				db.general = true // x/crypto makes of it what it does
				continue
			}
			db.plain[a] = append(db.plain[a], key)
		}
	}
	return sc.Err()
}

// patternAddr reads a plain name of a known_hosts line as x/crypto does:
// [host]:port, host:port, or host for port 22.
func patternAddr(p string) (hostPort, bool) {
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		if p[0] == '[' {
			return hostPort{}, false
		}
		return hostPort{p, "22"}, true
	}
	return hostPort{host, port}, true
}

// check is a HostKeyCallback: the index's answer when it has one, else
// x/crypto's.
func (db *knownHosts) check(hostname string, remote net.Addr, key gossh.PublicKey) error {
	if _, cert := key.(*gossh.Certificate); !cert && !db.markers {
		if host, port, err := net.SplitHostPort(hostname); err == nil {
			k := key.Marshal()
			for _, known := range db.plain[hostPort{host, port}] {
				if bytes.Equal(known.Marshal(), k) {
					return nil
				}
			}
		}
	}
	return db.callback(hostname, remote, key)
}

// keyTypes returns the types of the keys known for addr (host:port), in
// the files' order, and whether it could tell: the index knows them all
// when every line is plain.
func (db *knownHosts) keyTypes(addr string) ([]string, bool) {
	if db.general || db.markers {
		return nil, false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false
	}
	var types []string
	for _, k := range db.plain[hostPort{host, port}] {
		types = append(types, k.Type())
	}
	return types, true
}
