package ssh

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestKnownHostsIndex holds the index to x/crypto's answers: the same
// keys accepted and refused, the same key types listed, for plain,
// hashed, wildcard, negated, ported and malformed lines, and markers.
func TestKnownHostsIndex(t *testing.T) {
	newKey := func() gossh.PublicKey {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := gossh.NewSignerFromKey(priv)
		return s.PublicKey()
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec, _ := gossh.NewPublicKey(&ecKey.PublicKey)
	a, b, c, d := newKey(), newKey(), newKey(), newKey()
	line := func(hosts string, k gossh.PublicKey) string {
		return strings.Replace(knownhosts.Line([]string{"x"}, k), "x", hosts, 1)
	}
	plain := []string{
		line("pi-01,10.0.0.1", a),
		line("pi-01", ec),
		line("[pi-02]:2222", b),
		line("[10.0.0.3]:22", c),
		"pi-04 ssh-ed25519 not-base64",
		"pi-05 ssh-rsa " + strings.Fields(line("x", d))[2], // type mismatch: skipped
		line(",pi-06,", d),
		"# a comment",
		"",
	}
	general := append(slices.Clone(plain),
		line(knownhosts.HashHostname("pi-07"), a),
		line("pi-1*", b),
		line("pi-*,!pi-09", c),
	)
	marked := append(slices.Clone(general), "@revoked "+line("*", d))
	hosts := []string{"pi-01:22", "10.0.0.1:22", "pi-02:2222", "pi-02:22", "10.0.0.3:22", "pi-04:22", "pi-05:22", "pi-06:22", "pi-07:22", "pi-10:22", "pi-09:22", "pi-08:22", "nowhere:22"}
	for name, lines := range map[string][]string{"plain": plain, "general": general, "markers": marked} {
		t.Run(name, func(t *testing.T) {
			file := writeFile(t, "known_hosts", strings.Join(lines, "\n")+"\n")
			ref, err := knownhosts.New(file)
			if err != nil {
				t.Fatal(err)
			}
			db, err := readKnownHosts([]string{file})
			if err != nil {
				t.Fatal(err)
			}
			remote := &net.TCPAddr{IP: net.IPv4zero}
			for _, h := range hosts {
				for i, k := range []gossh.PublicKey{a, b, c, d, ec} {
					want, got := ref(h, remote, k), db.check(h, remote, k)
					if (want == nil) != (got == nil) {
						t.Errorf("%s, key %d: index says %v, x/crypto %v", h, i, got, want)
					}
				}
				var ke *knownhosts.KeyError
				var want []string
				if errors.As(ref(h, remote, probeKey{}), &ke) {
					for _, k := range ke.Want {
						want = append(want, k.Key.Type())
					}
				}
				if got, ok := db.keyTypes(h); ok && !slices.Equal(got, want) {
					t.Errorf("%s: key types: index says %q, x/crypto %q", h, got, want)
				} else if !ok && name == "plain" {
					t.Errorf("%s: the index does not know the key types of a file of plain lines", h)
				}
			}
		})
	}
}
