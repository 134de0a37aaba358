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
)

// HostKeyError is a host key piwall refuses: unknown (not in known_hosts)
// or, loudly, changed.
type HostKeyError struct {
	Host       string   // the target's label
	Addr       string   // host:port
	Offered    string   // fingerprint of the key the host offered
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
	return fmt.Sprintf("host key of %s (%s) is unknown: it offers %s, and %s has no key for it",
		e.Host, e.Addr, e.Offered, e.KnownHosts)
}

// hint says what to do about the key.
func (e *HostKeyError) hint() string {
	if e.Changed {
		return fmt.Sprintf("if you know it was reinstalled, remove the old key: ssh-keygen -R %s -f %s", knownhosts.Normalize(e.Addr), e.KnownHosts)
	}
	return "check the fingerprint on the host, then run again with --accept-new-host-keys"
}

func (e *HostKeyError) Unwrap() error { return e.underlying }

// hostKeyChecker checks host keys against known_hosts files (the
// user's, then the system's) and, when asked, records unknown ones in the
// user's first file.
type hostKeyChecker struct {
	label     string
	files     []string // the user's files, where an accepted key goes
	acceptNew bool
	callback  gossh.HostKeyCallback
}

// knownHostsMu serializes appends to known_hosts files across goroutines.
var knownHostsMu sync.Mutex

func newHostKeyChecker(t inventory.Target, acceptNew bool) (*hostKeyChecker, error) {
	if len(t.KnownHosts) == 0 {
		return nil, fmt.Errorf("%s: no known_hosts file to check the host key against", t.Label)
	}
	cb, err := knownHostsDB(append(append([]string(nil), t.KnownHosts...), t.GlobalKnownHosts...))
	if err != nil {
		return nil, err
	}
	return &hostKeyChecker{label: t.Label, files: t.KnownHosts, acceptNew: acceptNew, callback: cb}, nil
}

// knownHostsDBs caches parsed known_hosts files: a fleet's hosts share one
// file, and parsing it again for every connection costs time and, since a
// connection keeps its callback, memory in proportion to the fleet squared.
// An entry is parsed again when a file's size or time changes (a key
// recorded with --accept-new-host-keys).
var knownHostsDBs sync.Map // key: files and their stats → ssh.HostKeyCallback (nil: no file)

func knownHostsDB(files []string) (gossh.HostKeyCallback, error) {
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
	if cb, ok := knownHostsDBs.Load(key); ok {
		return cb.(gossh.HostKeyCallback), nil
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts: %w", err)
	}
	knownHostsDBs.Store(key, cb)
	return cb, nil
}

func (h *hostKeyChecker) check(hostname string, remote net.Addr, key gossh.PublicKey) error {
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
	e := &HostKeyError{Host: h.label, Addr: hostname, Offered: gossh.FingerprintSHA256(key), KnownHosts: h.files[0], underlying: err}
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
// default: the address a ProxyCommand or a jump host reaches is not one).
func (h *hostKeyChecker) record(hostname string, _ net.Addr, key gossh.PublicKey) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	addrs := []string{knownhosts.Normalize(hostname)}
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
	if h.callback == nil {
		return nil
	}
	err := h.callback(addr, &net.TCPAddr{}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var algos []string
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
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
