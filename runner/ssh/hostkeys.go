package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
)

// HostKeyError is a host key piwall refuses: unknown (not in known_hosts)
// or, loudly, changed.
type HostKeyError struct {
	Host       string   // the target's label
	Addr       string   // host:port
	Offered    string   // SHA256 fingerprint of the key the host offered
	Type       string   // its type, ssh-ed25519 say
	Known      []string // for a changed key: "file:line fingerprint" of each key on record
	KnownHosts string   // the file an unknown key would be recorded in
	Changed    bool
	underlying error
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("HOST KEY OF %s (%s) HAS CHANGED: it offers %s, known_hosts has %s. "+
			"Someone may be intercepting the connection, or the host was reinstalled",
			e.Host, e.Addr, e.Offered, strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("host key of %s (%s) is unknown: it offers %s key %s, and %s has no key for it",
		e.Host, e.Addr, e.Type, e.Offered, e.KnownHosts)
}

// hints say what to do about the key, in order. For an unknown key:
// verify its fingerprint out of band before trusting it, and only then
// accept it; --accept-new-host-keys alone would accept any key, an
// attacker's too.
func (e *HostKeyError) hints() []string {
	if e.Changed {
		return []string{fmt.Sprintf("if you know it was reinstalled, remove the old key: ssh-keygen -R %s -f %s", knownhosts.Normalize(e.Addr), e.KnownHosts)}
	}
	host, port, err := net.SplitHostPort(e.Addr)
	if err != nil {
		host, port = e.Addr, "22"
	}
	scan := "ssh-keyscan"
	if port != "22" {
		scan += " -p " + port
	}
	file := "/etc/ssh/ssh_host_" + keyFileType(e.Type) + "_key.pub"
	return []string{
		fmt.Sprintf("verify %s out of band before trusting it: from a network you trust, %s -t %s %s | ssh-keygen -lf -", e.Offered, scan, keyFileType(e.Type), host),
		fmt.Sprintf("or on the Pi's console: ssh-keygen -lf %s", file),
		"if the fingerprints match, run again with --accept-new-host-keys to record it",
	}
}

// keyFileType names the host key file of a key type, as sshd's
// ssh_host_TYPE_key.
func keyFileType(t string) string {
	switch {
	case strings.Contains(t, "ed25519"):
		return "ed25519"
	case strings.Contains(t, "ecdsa"):
		return "ecdsa"
	case strings.Contains(t, "rsa"):
		return "rsa"
	}
	return "ed25519"
}

// withHints adds the error's hints, the first one first.
func (e *HostKeyError) withHints() error {
	var err error = e
	h := e.hints()
	for i := len(h) - 1; i >= 0; i-- {
		err = modules.WithHint(err, h[i])
	}
	return err
}

func (e *HostKeyError) Unwrap() error { return e.underlying }

// hostKeyChecker checks host keys against known_hosts files (the
// user's, then the system's) and, when asked, records unknown ones in the
// user's first file.
type hostKeyChecker struct {
	label     string
	files     []string // the user's files, where an accepted key goes
	acceptNew bool
	hashed    bool // record accepted keys with hashed host names (HashKnownHosts)
	insecure  bool // accept any key: ssh_config turns checking off and the operator said so
	callback  gossh.HostKeyCallback
	db        *knownHosts // the callback's, nil without a file
}

// knownHostsMu serializes appends to known_hosts files across goroutines.
var knownHostsMu sync.Mutex

func newHostKeyChecker(t inventory.Target, acceptNew, insecure bool) (*hostKeyChecker, error) {
	if why := uncheckedHostKeys(t); why != "" {
		if !insecure {
			return nil, modules.WithHint(
				fmt.Errorf("%s: ssh_config turns host key checking off (%s); piwall checks host keys always", t.Label, why),
				"remove that setting for the host, or, knowing that anyone on the path can then pose as the host, run with --insecure-ignore-host-keys")
		}
		return &hostKeyChecker{label: t.Label, insecure: true}, nil
	}
	if len(t.KnownHosts) == 0 {
		return nil, fmt.Errorf("%s: no known_hosts file to check the host key against", t.Label)
	}
	db, err := knownHostsDB(append(append([]string(nil), t.KnownHosts...), t.GlobalKnownHosts...))
	if err != nil {
		return nil, err
	}
	h := &hostKeyChecker{label: t.Label, files: t.KnownHosts, acceptNew: acceptNew, hashed: t.HashKnownHosts, db: db}
	if db != nil {
		h.callback = db.check
	}
	return h, nil
}

// uncheckedHostKeys says why a target's settings turn host key checking
// off: StrictHostKeyChecking no, or no user known_hosts file but
// /dev/null (or none); "" when they do not.
func uncheckedHostKeys(t inventory.Target) string {
	if t.StrictHostKeyChecking == "no" {
		return "StrictHostKeyChecking no"
	}
	if len(t.KnownHosts) == 0 {
		return ""
	}
	for _, f := range t.KnownHosts {
		if f != os.DevNull && f != "/dev/null" && f != "none" {
			return ""
		}
	}
	return "UserKnownHostsFile " + strings.Join(t.KnownHosts, " ")
}

// knownHostsDBs caches parsed known_hosts files: a fleet's hosts share one
// file, and parsing it again for every connection costs time and, since a
// connection keeps its callback, memory in proportion to the fleet squared.
// An entry is parsed again when a file's size or time changes (a key
// recorded with --accept-new-host-keys).
var (
	knownHostsDBs sync.Map // key: files and their stats → *knownHosts
	// knownHostsRead is held while a file is read into the cache: the
	// hundreds of hosts a run starts with would each read it otherwise.
	knownHostsRead sync.Mutex
)

func knownHostsDB(files []string) (*knownHosts, error) {
	var existing []string
	key := ""
	for _, f := range files {
		fi, err := os.Stat(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		existing = append(existing, f)
		key += fmt.Sprintf("%s\x00%d\x00%d\x00", f, fi.Size(), fi.ModTime().UnixNano())
	}
	if len(existing) == 0 {
		return nil, nil
	}
	if db, ok := knownHostsDBs.Load(key); ok {
		return db.(*knownHosts), nil
	}
	knownHostsRead.Lock()
	defer knownHostsRead.Unlock()
	if db, ok := knownHostsDBs.Load(key); ok {
		return db.(*knownHosts), nil
	}
	db, err := readKnownHosts(existing)
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts: %w", err)
	}
	knownHostsDBs.Store(key, db)
	return db, nil
}

func (h *hostKeyChecker) check(hostname string, remote net.Addr, key gossh.PublicKey) error {
	if h.insecure {
		return nil
	}
	if _, ok := remote.(*net.TCPAddr); !ok {
		remote = &net.TCPAddr{IP: net.IPv4zero} // knownhosts wants one; it looks hostname up
	}
	var err error
	if h.callback != nil {
		if err = h.callback(hostname, remote, key); err == nil {
			return nil
		}
	} else {
		err = &knownhosts.KeyError{}
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return err // a revoked key, or a known_hosts that cannot be read
	}
	e := &HostKeyError{Host: h.label, Addr: hostname, Offered: gossh.FingerprintSHA256(key), Type: key.Type(), KnownHosts: h.files[0], underlying: err}
	if len(ke.Want) > 0 {
		e.Changed = true
		for _, k := range ke.Want {
			e.Known = append(e.Known, fmt.Sprintf("%s:%d %s", k.Filename, k.Line, gossh.FingerprintSHA256(k.Key)))
		}
		return e
	}
	if !h.acceptNew {
		return e
	}
	return h.record(hostname, remote, key)
}

// record appends a newly accepted key to the first known_hosts file,
// under the name it was looked up by (as ssh with CheckHostIP no, its
// default: the address a ProxyCommand or a jump host reaches is not one),
// hashed when HashKnownHosts says so.
func (h *hostKeyChecker) record(hostname string, _ net.Addr, key gossh.PublicKey) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	addrs := []string{knownhosts.Normalize(hostname)}
	if h.hashed {
		addrs[0] = knownhosts.HashHostname(addrs[0])
	}
	if err := os.MkdirAll(filepath.Dir(h.files[0]), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(h.files[0], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("recording the host key of %s: %w", h.label, err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, knownhosts.Line(addrs, key))
	return err
}

// algorithms lists the key types known_hosts holds for addr, so that the
// server offers a key that can be checked (x/crypto/ssh otherwise takes the
// server's preferred type, and a host known by its ed25519 key would seem
// changed when it offers ECDSA). None known: every type.
func (h *hostKeyChecker) algorithms(addr string) []string {
	if h.callback == nil || h.insecure {
		return nil
	}
	types, ok := h.db.keyTypes(addr)
	if !ok {
		err := h.callback(addr, &net.TCPAddr{}, probeKey{})
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return nil
		}
		for _, k := range ke.Want {
			types = append(types, k.Key.Type())
		}
	}
	if len(types) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var algos []string
	for _, t := range types {
		for _, a := range algorithmsFor(t) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	sort.Strings(algos)
	return algos
}

// algorithmsFor maps a key type to the signature algorithms that use it.
func algorithmsFor(keyType string) []string {
	if keyType == gossh.KeyAlgoRSA {
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a key no host has, to make known_hosts list the keys it
// holds for an address.
type probeKey struct{}

func (probeKey) Type() string                          { return "piwall-probe" }
func (probeKey) Marshal() []byte                       { return []byte("piwall-probe") }
func (probeKey) Verify([]byte, *gossh.Signature) error { return errors.New("probe key") }
