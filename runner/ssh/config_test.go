package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/runner"
	"github.com/piwall/piwall/runner/sim"
)

// These tests hold the dialer to what ssh_config asks of a connection:
// jump hosts each with their own settings, ProxyCommand, HostKeyAlias,
// GlobalKnownHostsFile, lowercase names, IdentityAgent, IdentitiesOnly
// and CertificateFile. The hosts are runner/sim's in-process SSH servers.
//
//	go test ./runner/ssh

// hostKeyOf returns the host key the sim fleet's known_hosts records.
func hostKeyOf(t *testing.T, f *sim.Fleet) gossh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(f.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, key, _, _, err := gossh.ParseKnownHosts(b)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func dialOK(t *testing.T, d *Dialer, target inventory.Target) {
	t.Helper()
	c, err := d.Dial(context.Background(), target)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if res, err := c.Run(context.Background(), "no such command", nil); err != nil || res.Status != 127 {
		t.Errorf("Run over the connection: %+v, %v", res, err)
	}
	c.Close()
}

func TestDialJumpHops(t *testing.T) {
	// The jump host and the target are of two fleets: each has its own
	// operator key and host key, so the hop must be dialled with its own.
	hop, _ := simTarget(t)
	target, _ := simTarget(t)
	hop.Label, hop.User = "bastion", "jumper"
	target.Hops, target.Jump = []inventory.Target{hop}, "jumper@bastion"
	stats := &runner.Stats{}
	dialOK(t, &Dialer{Stats: stats}, target)
	if n := stats.Host(target.Label).Connections.Load(); n != 1 {
		t.Errorf("connections counted for the target: %d, want 1", n)
	}

	t.Run("two hops, the second through the first", func(t *testing.T) {
		second, _ := simTarget(t)
		second.Label = "inner"
		target := target
		target.Hops = []inventory.Target{hop, second}
		dialOK(t, &Dialer{}, target)
	})

	t.Run("a hop with the target's keys is refused", func(t *testing.T) {
		bad := hop
		bad.IdentityFiles = target.IdentityFiles
		target := target
		target.Hops = []inventory.Target{bad}
		_, err := (&Dialer{}).Dial(context.Background(), target)
		if err == nil || !strings.Contains(err.Error(), "jump host bastion: authenticating") {
			t.Errorf("got %v, want the jump host's authentication error", err)
		}
	})

	t.Run("a hop's unknown host key names the hop", func(t *testing.T) {
		bad := hop
		bad.KnownHosts = []string{filepath.Join(t.TempDir(), "known_hosts")}
		target := target
		target.Hops = []inventory.Target{bad}
		_, err := (&Dialer{}).Dial(context.Background(), target)
		var hk *HostKeyError
		if !errors.As(err, &hk) || hk.Host != "bastion" || !strings.HasPrefix(err.Error(), "jump host bastion: ") {
			t.Errorf("got %v, want the hop's unknown host key", err)
		}
	})
}

// TestProxyHelper is not a test: it is the ProxyCommand of
// TestDialProxyCommand, started as a child process. It connects to
// $PIWALL_PROXY_TO and copies its stdin and stdout to and from it, as nc
// would.
func TestProxyHelper(t *testing.T) {
	addr := os.Getenv("PIWALL_PROXY_TO")
	if addr == "" {
		t.Skip("the ProxyCommand of TestDialProxyCommand, not a test")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(os.Stdout, c)
	os.Exit(0)
}

func TestDialProxyCommand(t *testing.T) {
	target, _ := simTarget(t)
	t.Setenv("PIWALL_PROXY_TO", target.Addr())
	target.ProxyCommand = fmt.Sprintf("'%s' -test.run='^TestProxyHelper$'", os.Args[0])
	// The address is what known_hosts knows the host by; the command
	// alone reaches it.
	dialOK(t, &Dialer{}, target)

	t.Run("a command that fails says so, with its stderr", func(t *testing.T) {
		target := target
		target.ProxyCommand = "echo no route to pi-01 >&2"
		_, err := (&Dialer{}).Dial(context.Background(), target)
		if err == nil || !strings.Contains(err.Error(), "ProxyCommand") || !strings.Contains(err.Error(), "no route to pi-01") {
			t.Errorf("got %v, want the ProxyCommand's end and its stderr", err)
		}
	})
}

func TestDialHostKeyNames(t *testing.T) {
	target, f := simTarget(t)
	key := hostKeyOf(t, f)

	t.Run("HostKeyAlias names the key, in lowercase, without the port", func(t *testing.T) {
		target := target
		target.KnownHosts = []string{writeFile(t, "known_hosts", knownhosts.Line([]string{"pi-alias"}, key)+"\n")}
		target.HostKeyAlias = "Pi-Alias"
		dialOK(t, &Dialer{}, target)
		target.HostKeyAlias = ""
		if _, err := (&Dialer{}).Dial(context.Background(), target); err == nil {
			t.Error("without the alias the key is found: the test proves nothing")
		}
	})

	t.Run("a mixed-case address is looked up in lowercase", func(t *testing.T) {
		target := target
		target.Address = "LocalHost"
		target.KnownHosts = []string{writeFile(t, "known_hosts", knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("localhost:%d", target.Port))}, key)+"\n")}
		dialOK(t, &Dialer{}, target)
	})

	t.Run("the system's known_hosts is consulted after the user's", func(t *testing.T) {
		target := target
		target.KnownHosts = []string{filepath.Join(t.TempDir(), "known_hosts")}
		target.GlobalKnownHosts = []string{filepath.Join(t.TempDir(), "none"), f.KnownHosts}
		dialOK(t, &Dialer{}, target)
	})
}

// startAgent serves an ssh-agent holding keys on a socket of its own.
func startAgent(t *testing.T, keys ...any) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()
	return sock
}

func privateKey(t *testing.T, file string) any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDialAgent(t *testing.T) {
	target, f := simTarget(t)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	sock := startAgent(t, privateKey(t, f.Key))
	t.Setenv("SSH_AUTH_SOCK", "")
	none := filepath.Join(t.TempDir(), "id_none")

	t.Run("IdentityAgent chooses the agent", func(t *testing.T) {
		target := target
		target.IdentityFiles, target.UseAgent, target.IdentityAgent = []string{none}, true, sock
		dialOK(t, &Dialer{}, target)
	})

	t.Run("an IdentityAgent variable names the socket", func(t *testing.T) {
		t.Setenv("PIWALL_AGENT", sock)
		target := target
		target.IdentityFiles, target.UseAgent, target.IdentityAgent = []string{none}, true, "$PIWALL_AGENT"
		dialOK(t, &Dialer{}, target)
	})

	t.Run("IdentitiesOnly leaves out the agent's other keys", func(t *testing.T) {
		otherFile := filepath.Join(t.TempDir(), "id_other")
		block, _ := gossh.MarshalPrivateKey(other, "")
		os.WriteFile(otherFile, pem.EncodeToMemory(block), 0o600)
		target := target
		target.IdentityFiles, target.UseAgent, target.IdentityAgent, target.IdentitiesOnly = []string{otherFile}, true, sock, true
		_, err := (&Dialer{}).Dial(context.Background(), target)
		if err == nil || !strings.Contains(err.Error(), "authenticating") {
			t.Errorf("got %v, want the agent's key left out and the file's refused", err)
		}
		target.IdentitiesOnly = false
		dialOK(t, &Dialer{}, target)
	})

	t.Run("the named key is offered before the agent's others", func(t *testing.T) {
		// The agent holds another key first: offered first, the host
		// would refuse it, a round trip lost.
		right, _ := gossh.NewSignerFromKey(privateKey(t, f.Key))
		addr, known, offered := keyLogHost(t, right.PublicKey())
		target := target
		target.Address, target.Port, target.KnownHosts = addr.IP.String(), addr.Port, []string{known}
		target.UseAgent, target.IdentityAgent = true, startAgent(t, other, privateKey(t, f.Key))
		if c, err := (&Dialer{}).Dial(context.Background(), target); err != nil {
			t.Fatal(err)
		} else {
			c.Close()
		}
		if got := offered(); len(got) != 1 || got[0] != gossh.FingerprintSHA256(right.PublicKey()) {
			t.Errorf("keys offered: %v, want the named one alone (%s)", got, gossh.FingerprintSHA256(right.PublicKey()))
		}
	})

	t.Run("IdentitiesOnly keeps the agent's key of a named file", func(t *testing.T) {
		target := target
		target.IdentityFiles, target.UseAgent, target.IdentityAgent, target.IdentitiesOnly = []string{f.Key}, true, sock, true
		dialOK(t, &Dialer{}, target)
	})
}

// certHost serves SSH on loopback, admitting users whose certificate ca
// signed, and returns its address and a known_hosts file for it.
func certHost(t *testing.T, ca gossh.PublicKey) (*net.TCPAddr, string) {
	t.Helper()
	checker := &gossh.CertChecker{IsUserAuthority: func(k gossh.PublicKey) bool {
		return string(k.Marshal()) == string(ca.Marshal())
	}}
	return serveSSH(t, &gossh.ServerConfig{PublicKeyCallback: checker.Authenticate})
}

// serveSSH serves SSH on loopback with cfg and a host key of its own,
// refusing every channel, and returns its address and a known_hosts file
// for it.
func serveSSH(t *testing.T, cfg *gossh.ServerConfig) (*net.TCPAddr, string) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := gossh.NewSignerFromKey(hostPriv)
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				sc, chans, reqs, err := gossh.NewServerConn(c, cfg)
				if err != nil {
					c.Close()
					return
				}
				go gossh.DiscardRequests(reqs)
				for nc := range chans {
					nc.Reject(gossh.Prohibited, "no sessions")
				}
				sc.Close()
			}()
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	return addr, writeFile(t, "known_hosts", knownhosts.Line([]string{knownhosts.Normalize(addr.String())}, hostKey.PublicKey())+"\n")
}

// keyLogHost serves SSH on loopback, admitting the key want alone, and
// returns its address, a known_hosts file for it, and the keys offered to
// it so far (their fingerprints, in order, each once).
func keyLogHost(t *testing.T, want gossh.PublicKey) (*net.TCPAddr, string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var offered []string
	addr, known := serveSSH(t, &gossh.ServerConfig{PublicKeyCallback: func(_ gossh.ConnMetadata, k gossh.PublicKey) (*gossh.Permissions, error) {
		mu.Lock()
		if fp := gossh.FingerprintSHA256(k); !slices.Contains(offered, fp) {
			offered = append(offered, fp)
		}
		mu.Unlock()
		if bytes.Equal(k.Marshal(), want.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("not this key")
	}})
	return addr, known, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(offered)
	}
}

func TestDialCertificate(t *testing.T) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := gossh.NewSignerFromKey(caPriv)
	addr, kh := certHost(t, ca.PublicKey())
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userKey, _ := gossh.NewSignerFromKey(userPriv)
	cert := &gossh.Certificate{Key: userKey.PublicKey(), CertType: gossh.UserCert, ValidPrincipals: []string{"pi"},
		ValidBefore: gossh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	block, _ := gossh.MarshalPrivateKey(userPriv, "")
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	certText := gossh.MarshalAuthorizedKey(cert)
	target := inventory.Target{Label: "pi-cert", Address: "127.0.0.1", Port: addr.Port, User: "pi",
		IdentityFiles: []string{keyFile}, KnownHosts: []string{kh}}
	t.Setenv("SSH_AUTH_SOCK", "")

	handshake := func(target inventory.Target) error {
		c, err := (&Dialer{}).Dial(context.Background(), target)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := handshake(target); err == nil {
		t.Fatal("the host admits the bare key: the test proves nothing")
	}
	t.Run("CertificateFile", func(t *testing.T) {
		target := target
		target.CertificateFiles = []string{writeFile(t, "cert.pub", string(certText))}
		if err := handshake(target); err != nil {
			t.Errorf("with the certificate: %v", err)
		}
	})
	t.Run("KEY-cert.pub beside the key", func(t *testing.T) {
		os.WriteFile(keyFile+"-cert.pub", certText, 0o600)
		defer os.Remove(keyFile + "-cert.pub")
		if err := handshake(target); err != nil {
			t.Errorf("with the certificate beside the key: %v", err)
		}
	})
	t.Run("a file that is no certificate", func(t *testing.T) {
		target := target
		target.CertificateFiles = []string{writeFile(t, "cert.pub", string(gossh.MarshalAuthorizedKey(userKey.PublicKey())))}
		if err := handshake(target); err == nil || !strings.Contains(err.Error(), "not a certificate") {
			t.Errorf("got %v, want a plain key refused as a certificate", err)
		}
	})
}

func TestDialAlgorithms(t *testing.T) {
	target, _ := simTarget(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	for _, tc := range []struct {
		name string
		set  inventory.Algorithms
		want string // a part of the error; "" to connect
	}{
		{"lists piwall can use", inventory.Algorithms{Ciphers: []string{"aes192-cbc", "aes128-ctr"}, MACs: []string{"hmac-sha2-256"},
			KeyExchanges: []string{"curve25519-sha256"}, HostKeys: []string{"ssh-ed25519"}, PublicKeyAuths: []string{"ssh-ed25519"}}, ""},
		{"only what x/crypto does not implement", inventory.Algorithms{Ciphers: []string{"aes192-cbc"}},
			"none of ssh_config's Ciphers aes192-cbc is one piwall can use"},
		{"an insecure cipher the host does not offer", inventory.Algorithms{Ciphers: []string{"3des-cbc"}}, "no common algorithm"},
		{"a host key type the host does not have", inventory.Algorithms{HostKeys: []string{"rsa-sha2-512"}}, "no common algorithm for host key"},
		{"no key of an accepted type", inventory.Algorithms{PublicKeyAuths: []string{"rsa-sha2-512"}}, "PubkeyAcceptedAlgorithms accepts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := target
			target.Algorithms = tc.set
			c, err := (&Dialer{}).Dial(context.Background(), target)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				c.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestDialAgentKeyOfEncryptedFile uses the agent's copy of an encrypted
// key file, IdentitiesOnly or not, without asking for its passphrase:
// the file holds its public key in the clear.
func TestDialAgentKeyOfEncryptedFile(t *testing.T) {
	target, f := simTarget(t)
	priv := privateKey(t, f.Key)
	block, err := gossh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(enc, pem.EncodeToMemory(block), 0o600)
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, priv))
	target.IdentityFiles, target.UseAgent, target.IdentitiesOnly = []string{enc}, true, true
	asked := 0
	d := &Dialer{Passphrase: func(string) ([]byte, error) { asked++; return nil, errors.New("no") }}
	dialOK(t, d, target)
	if asked != 0 {
		t.Errorf("asked for the passphrase %d times, want none: the agent holds the key", asked)
	}
}
