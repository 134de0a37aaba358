package inventory

import (
	"fmt"
	"strings"
)

// Algorithms are the algorithm lists of a connection, as ssh_config's
// Ciphers, MACs, KexAlgorithms, HostKeyAlgorithms and
// PubkeyAcceptedAlgorithms give them, each resolved the way OpenSSH's
// kex_assemble_names does: "+LIST" appended to the default, "-LIST"
// (patterns) taken out of it, "^LIST" put before it, any other LIST
// instead of it, patterns matched against every algorithm ssh knows.
type Algorithms struct {
	Ciphers        []string
	MACs           []string
	KeyExchanges   []string
	HostKeys       []string
	PublicKeyAuths []string
}

// algorithmList is what OpenSSH 9.2 (Debian bookworm's build) knows of
// one keyword's algorithms: its default list, every name it knows
// (ssh -Q), and whether a list may hold patterns before it is resolved.
type algorithmList struct {
	field    func(*Algorithms) *[]string
	def, all string
	patterns bool
}

// The lists of OpenSSH 9.2 as Debian bookworm builds it: ssh -G -F
// /dev/null prints the defaults, ssh -Q cipher, mac, kex and key-sig
// every name. TestSSHConfigAgainstOpenSSH compares them with ssh's.
const (
	keyAlgorithmsAll = "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,sk-ssh-ed25519@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com," +
		"ecdsa-sha2-nistp256,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384,ecdsa-sha2-nistp384-cert-v01@openssh.com," +
		"ecdsa-sha2-nistp521,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com," +
		"webauthn-sk-ecdsa-sha2-nistp256@openssh.com,ssh-dss,ssh-dss-cert-v01@openssh.com,ssh-rsa,ssh-rsa-cert-v01@openssh.com," +
		"rsa-sha2-256,rsa-sha2-256-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-512-cert-v01@openssh.com"
	keyAlgorithmsDefault = "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com," +
		"ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com," +
		"rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384," +
		"ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256"
)

var algorithmLists = map[string]algorithmList{
	"ciphers": {
		field: func(a *Algorithms) *[]string { return &a.Ciphers },
		def:   "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
		all: "3des-cbc,aes128-cbc,aes192-cbc,aes256-cbc,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com," +
			"aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
	},
	"macs": {
		field: func(a *Algorithms) *[]string { return &a.MACs },
		def: "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com," +
			"hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
		all: "hmac-sha1,hmac-sha1-96,hmac-sha2-256,hmac-sha2-512,hmac-md5,hmac-md5-96,umac-64@openssh.com,umac-128@openssh.com," +
			"hmac-sha1-etm@openssh.com,hmac-sha1-96-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com," +
			"hmac-md5-etm@openssh.com,hmac-md5-96-etm@openssh.com,umac-64-etm@openssh.com,umac-128-etm@openssh.com",
	},
	"kexalgorithms": {
		field: func(a *Algorithms) *[]string { return &a.KeyExchanges },
		def: "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org," +
			"ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256," +
			"diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256",
		all: "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,diffie-hellman-group14-sha256,diffie-hellman-group16-sha512," +
			"diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha1,diffie-hellman-group-exchange-sha256," +
			"ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,curve25519-sha256,curve25519-sha256@libssh.org," +
			"sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com" +
			// OpenSSH 9.9's, so that a configuration written for it (a
			// crypto policy in /etc/ssh/ssh_config.d, say) still loads.
			",mlkem768x25519-sha256",
	},
	"hostkeyalgorithms": {
		field: func(a *Algorithms) *[]string { return &a.HostKeys },
		def:   keyAlgorithmsDefault, all: keyAlgorithmsAll, patterns: true,
	},
	"pubkeyacceptedalgorithms": {
		field: func(a *Algorithms) *[]string { return &a.PublicKeyAuths },
		def:   keyAlgorithmsDefault, all: keyAlgorithmsAll, patterns: true,
	},
}

// checkAlgorithms refuses, as ssh does in every section, a list that
// names an algorithm ssh does not know (a pattern, where only key types
// take them, must match one); a "-" list is not checked.
func checkAlgorithms(key, v string) error {
	l := algorithmLists[key]
	if strings.HasPrefix(v, "-") {
		return nil
	}
	v = strings.TrimLeft(v, "+^")
	for _, name := range strings.Split(v, ",") {
		ok := false
		for _, known := range strings.Split(l.all, ",") {
			if name == known || (l.patterns && matchPattern(known, name)) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("%s: no such algorithm %q (ssh -Q lists them)", key, name)
		}
	}
	return nil
}

// assembleAlgorithms resolves a keyword's list as kex_assemble_names
// does; "" is the default.
func assembleAlgorithms(key, v string) ([]string, error) {
	l := algorithmLists[key]
	def, all := strings.Split(l.def, ","), strings.Split(l.all, ",")
	var list []string
	switch {
	case v == "":
		return def, nil
	case strings.HasPrefix(v, "-"):
		var out []string
		for _, name := range def {
			if !matchList(name, v[1:], false) {
				out = append(out, name)
			}
		}
		return out, nil
	case strings.HasPrefix(v, "+"):
		list = catNames(def, strings.Split(v[1:], ","))
	case strings.HasPrefix(v, "^"):
		list = catNames(strings.Split(v[1:], ","), def)
	default:
		list = strings.Split(v, ",")
	}
	var out []string
	for _, p := range list {
		if strings.HasPrefix(p, "!") {
			return nil, fmt.Errorf("%s %s: a negated pattern is not allowed here", key, v)
		}
		var matching []string
		for _, name := range all {
			if matchPattern(name, p) {
				matching = append(matching, name)
			}
		}
		out = catNames(out, matching)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %s names no algorithm", key, v)
	}
	return out, nil
}

// catNames is a followed by the names of b it does not hold.
func catNames(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, n := range b {
		if n == "" {
			continue
		}
		seen := false
		for _, x := range out {
			if x == n {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, n)
		}
	}
	return out
}
