// Package ssh connects to hosts with golang.org/x/crypto/ssh the way the
// target's ssh_config says: keys from files (asking for passphrases on a
// terminal), certificates and ssh-agent (IdentityAgent, IdentitiesOnly),
// host keys checked against the user's and the system's known_hosts
// (HostKeyAlias), ProxyJump hops each with their own settings, and
// ProxyCommand.
package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/piwall/piwall/inventory"
	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/runner"
)

// Dialer opens SSH connections to targets.
type Dialer struct {
	// AcceptNewHostKeys records the key of a host that known_hosts does
	// not know yet (in the target's first known_hosts file) instead of
	// refusing it. A changed key is refused always.
	AcceptNewHostKeys bool
	// InsecureIgnoreHostKeys accepts any host key of a target whose
	// ssh_config turns checking off (StrictHostKeyChecking no,
	// UserKnownHostsFile /dev/null); without it such a target is
	// refused. Other targets' keys are checked all the same.
	InsecureIgnoreHostKeys bool
	// Passphrase asks for the passphrase of an encrypted key file; nil
	// when there is no terminal to ask on.
	Passphrase func(keyFile string) ([]byte, error)
	// Timeout bounds connecting and authenticating; 0 means 10s.
	Timeout time.Duration
	// Stats, when set, counts connections, commands and uploads per host.
	Stats *runner.Stats

	keysMu sync.Mutex
	keys   map[string]gossh.Signer        // parsed key files, asked for once
	agents map[string]agent.ExtendedAgent // by socket; nil: none there
}

// turns is a connection that counts its turns into a host's RoundTrips.
type turns struct {
	net.Conn
	sent  atomic.Bool
	count *atomic.Int64
}

func (c *turns) Write(b []byte) (int, error) {
	c.sent.Store(true)
	return c.Conn.Write(b)
}

func (c *turns) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.sent.Swap(false) {
		c.count.Add(1)
	}
	return n, err
}

func (d *Dialer) timeout() time.Duration {
	if d.Timeout == 0 {
		return 10 * time.Second
	}
	return d.Timeout
}

// Dial connects to t, through its jump hosts or its ProxyCommand if it
// has one, and authenticates.
func (d *Dialer) Dial(ctx context.Context, t inventory.Target) (runner.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	client, jumps, err := d.dialTarget(ctx, t)
	if err != nil {
		return nil, err
	}
	if d.Stats != nil {
		d.Stats.Host(t.Label).Connections.Add(1)
	}
	login := t.User + "@" + t.Address
	if t.Port != 0 && t.Port != 22 {
		login += fmt.Sprintf(" -p %d", t.Port)
	}
	return &conn{client: client, jumps: jumps, label: t.Label, login: login, stats: d.Stats}, nil
}

// dialTarget connects to t as ssh does: through its ProxyCommand, or its
// jump hosts (the first reached the way its own settings say, each next
// one through the one before), or directly. It returns the connection and
// the jump hosts' connections, to be closed with it, last first.
func (d *Dialer) dialTarget(ctx context.Context, t inventory.Target) (*gossh.Client, []*gossh.Client, error) {
	var nc net.Conn
	var jumps []*gossh.Client
	var err error
	switch {
	case t.ProxyCommand != "":
		if nc, err = proxyCommand(t.ProxyCommand); err != nil {
			return nil, nil, fmt.Errorf("ProxyCommand of %s: %w", t.Label, err)
		}
	case len(t.Hops) > 0:
		var via *gossh.Client
		if via, jumps, err = d.dialTarget(ctx, t.Hops[0]); err != nil {
			return nil, nil, fmt.Errorf("jump host %s: %w", t.Hops[0].Label, err)
		}
		jumps = append(jumps, via)
		for _, hop := range t.Hops[1:] {
			next, err := d.through(ctx, hop, via)
			if err != nil {
				closeAll(jumps)
				return nil, nil, fmt.Errorf("jump host %s: %w", hop.Label, err)
			}
			jumps, via = append(jumps, next), next
		}
		if nc, err = via.DialContext(ctx, "tcp", t.Addr()); err != nil {
			closeAll(jumps)
			return nil, nil, fmt.Errorf("connecting to %s through %s: %w", t.Addr(), t.Hops[len(t.Hops)-1].Label, err)
		}
	default:
		nd := net.Dialer{Timeout: t.ConnectTimeout}
		if nc, err = nd.DialContext(ctx, "tcp", t.Addr()); err != nil {
			return nil, nil, fmt.Errorf("connecting to %s: %w", t.Addr(), err)
		}
		if d.Stats != nil {
			d.Stats.Host(t.Label).RoundTrips.Add(1) // the TCP handshake
		}
	}
	if d.Stats != nil {
		nc = &turns{Conn: nc, count: &d.Stats.Host(t.Label).RoundTrips}
	}
	client, err := d.handshake(ctx, t, nc)
	if err != nil {
		closeAll(jumps)
		return nil, nil, err
	}
	return client, jumps, nil
}

// through connects to t through the jump host via.
func (d *Dialer) through(ctx context.Context, t inventory.Target, via *gossh.Client) (*gossh.Client, error) {
	nc, err := via.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", t.Addr(), err)
	}
	return d.handshake(ctx, t, nc)
}

func closeAll(clients []*gossh.Client) {
	for i := len(clients) - 1; i >= 0; i-- {
		clients[i].Close()
	}
}

// handshake makes nc an authenticated SSH connection to t, its host key
// checked against t's known_hosts files under the name ssh looks it up
// by: HostKeyAlias, else the lowercased address, with the port when it is
// not 22.
func (d *Dialer) handshake(ctx context.Context, t inventory.Target, nc net.Conn) (*gossh.Client, error) {
	hostKeys, err := newHostKeyChecker(t, d.AcceptNewHostKeys, d.InsecureIgnoreHostKeys)
	if err != nil {
		nc.Close()
		return nil, err
	}
	auth, err := d.authMethods(t)
	if err != nil {
		nc.Close()
		return nil, err
	}
	name := knownHostsName(t)
	cfg := &gossh.ClientConfig{
		User:              t.User,
		Auth:              auth,
		HostKeyCallback:   hostKeys.check,
		HostKeyAlgorithms: hostKeys.algorithms(name),
		Timeout:           d.timeout(),
	}
	if err := applyAlgorithms(cfg, t); err != nil {
		nc.Close()
		return nil, err
	}
	// The handshake has no context of its own: a deadline bounds it.
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	c, chans, reqs, err := gossh.NewClientConn(nc, name, cfg)
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk.withHints()
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, modules.WithHint(fmt.Errorf("authenticating as %s on %s: %w", t.User, t.Addr(), err), "check the user and key: identity_file, ssh-agent, ~/.ssh/config")
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", t.Addr(), err)
	}
	nc.SetDeadline(time.Time{})
	return gossh.NewClient(c, chans, reqs), nil
}

// knownHostsName is the name known_hosts holds t's key under, as
// host:port for knownhosts: HostKeyAlias alone (ssh adds no port to an
// alias), else the address in lowercase.
func knownHostsName(t inventory.Target) string {
	if t.HostKeyAlias != "" {
		return net.JoinHostPort(strings.ToLower(t.HostKeyAlias), "22")
	}
	return net.JoinHostPort(strings.ToLower(t.Address), strconv.Itoa(t.Port))
}

// authMethods offers, as ssh does, the agent's keys (only those of
// IdentityFile and CertificateFile with IdentitiesOnly), then each key
// file that exists and the agent does not hold, each key with its
// certificates (CertificateFile, and KEY-cert.pub beside a key file).
func (d *Dialer) authMethods(t inventory.Target) ([]gossh.AuthMethod, error) {
	var signers []gossh.Signer
	var agentKeys []gossh.Signer
	if t.UseAgent {
		if a := d.agentClient(t.IdentityAgent); a != nil {
			if s, err := a.Signers(); err == nil {
				agentKeys = s
			}
		}
	}
	certs, err := readCertificates(t)
	if err != nil {
		return nil, err
	}
	wanted := map[string]bool{} // the public keys the files name, for IdentitiesOnly
	for _, f := range t.IdentityFiles {
		if k := publicKeyOf(f); k != nil {
			wanted[string(k.Marshal())] = true
		}
	}
	for _, c := range certs {
		wanted[string(c.Key.Marshal())] = true
	}
	inAgent := map[string]bool{}
	for _, s := range agentKeys {
		k := string(s.PublicKey().Marshal())
		if t.IdentitiesOnly && !wanted[k] {
			continue
		}
		inAgent[k] = true
		signers = append(signers, s)
	}
	for _, f := range t.IdentityFiles {
		if k := publicKeyOf(f); k != nil && inAgent[string(k.Marshal())] {
			continue // the agent signs with it: no passphrase to ask
		}
		s, err := d.keyFile(f, !t.UseAgent)
		if err != nil {
			return nil, err
		}
		if s != nil {
			signers = append(signers, s)
		}
	}
	// The keys the config names go first, the agent's others after them: a
	// key the host refuses costs a round trip.
	slices.SortStableFunc(signers, func(a, b gossh.Signer) int {
		return cmpBool(wanted[string(b.PublicKey().Marshal())], wanted[string(a.PublicKey().Marshal())])
	})
	// A certificate goes with the key it certifies, before the key alone.
	var withCerts []gossh.Signer
	for _, s := range signers {
		for _, c := range certs {
			if bytes.Equal(c.Key.Marshal(), s.PublicKey().Marshal()) {
				cs, err := gossh.NewCertSigner(c, s)
				if err == nil {
					withCerts = append(withCerts, cs)
				}
			}
		}
	}
	signers = acceptedSigners(append(withCerts, signers...), t.Algorithms.PublicKeyAuths)
	if len(signers) == 0 && t.Algorithms.PublicKeyAuths != nil {
		return nil, modules.WithHint(fmt.Errorf("no key to log in to %s with that ssh_config's PubkeyAcceptedAlgorithms accepts", t.Label),
			"PubkeyAcceptedAlgorithms "+strings.Join(t.Algorithms.PublicKeyAuths, ","))
	}
	if len(signers) == 0 {
		return nil, modules.WithHint(fmt.Errorf("no key to log in to %s with: no ssh-agent keys and none of %s", t.Label, strings.Join(t.IdentityFiles, ", ")), "set identity_file in the plan, or ssh-add a key")
	}
	return []gossh.AuthMethod{gossh.PublicKeys(signers...)}, nil
}

// readCertificates reads t's CertificateFiles and the KEY-cert.pub files
// beside its key files; a missing file is none, as in ssh.
func readCertificates(t inventory.Target) ([]*gossh.Certificate, error) {
	var out []*gossh.Certificate
	files := append([]string(nil), t.CertificateFiles...)
	for _, f := range t.IdentityFiles {
		files = append(files, f+"-cert.pub")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading certificate: %w", err)
		}
		k, _, _, _, err := gossh.ParseAuthorizedKey(b)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", f, err)
		}
		c, ok := k.(*gossh.Certificate)
		if !ok {
			return nil, fmt.Errorf("certificate %s: a %s key, not a certificate", f, k.Type())
		}
		out = append(out, c)
	}
	return out, nil
}

// publicKeyOf returns the public key of a key file without asking for a
// passphrase: from FILE.pub, else from the file (an encrypted key in
// OpenSSH's format holds its public key in the clear); nil when neither
// says.
func publicKeyOf(file string) gossh.PublicKey {
	if b, err := os.ReadFile(file + ".pub"); err == nil {
		if k, _, _, _, err := gossh.ParseAuthorizedKey(b); err == nil {
			return k
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	s, err := gossh.ParsePrivateKey(b)
	var missing *gossh.PassphraseMissingError
	switch {
	case err == nil:
		return s.PublicKey()
	case errors.As(err, &missing):
		return missing.PublicKey
	}
	return nil
}

// keyFile parses a private key file once per run, asking for its
// passphrase if it has one. A missing default key is skipped; a missing key
// the plan names (required) is an error.
func (d *Dialer) keyFile(file string, required bool) (gossh.Signer, error) {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	if s, ok := d.keys[file]; ok {
		return s, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		if os.IsNotExist(err) && !required {
			return nil, nil
		}
		return nil, fmt.Errorf("reading key: %w", err)
	}
	s, err := gossh.ParsePrivateKey(pem)
	if err != nil && !required && strings.Contains(err.Error(), "unhandled key type") {
		return nil, nil // a security key (id_ed25519_sk): ssh-agent can offer it
	}
	var missing *gossh.PassphraseMissingError
	if errors.As(err, &missing) {
		if d.Passphrase == nil {
			return nil, modules.WithHint(fmt.Errorf("key %s has a passphrase and there is no terminal to ask for it", file), "ssh-add it to ssh-agent")
		}
		pass, perr := d.Passphrase(file)
		if perr != nil {
			return nil, perr
		}
		s, err = gossh.ParsePrivateKeyWithPassphrase(pem, pass)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", file, err)
	}
	if d.keys == nil {
		d.keys = map[string]gossh.Signer{}
	}
	d.keys[file] = s
	return s, nil
}

// agentClient connects to the agent IdentityAgent names, once per run:
// "" or SSH_AUTH_SOCK for $SSH_AUTH_SOCK, $NAME for another variable's
// socket, else a path. nil when there is none.
func (d *Dialer) agentClient(identityAgent string) agent.ExtendedAgent {
	sock := identityAgent
	switch {
	case sock == "" || sock == "SSH_AUTH_SOCK":
		sock = os.Getenv("SSH_AUTH_SOCK")
	case strings.HasPrefix(sock, "$"):
		sock = os.Getenv(sock[1:])
	}
	if sock == "" {
		return nil
	}
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	if a, ok := d.agents[sock]; ok {
		return a
	}
	if d.agents == nil {
		d.agents = map[string]agent.ExtendedAgent{}
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		d.agents[sock] = nil
		return nil
	}
	d.agents[sock] = agent.NewClient(c)
	return d.agents[sock]
}

// conn is one open connection.
type conn struct {
	client *gossh.Client
	jumps  []*gossh.Client // the jump hosts' connections, closed with this one
	label  string
	login  string // user@address [-p port], for ssh(1) in hints
	stats  *runner.Stats
	rtt    atomic.Int64 // the shortest channel open, in nanoseconds; 0 before the first
}

// RTT is the shortest time a channel took to open on this connection, an
// exchange the host answers at once: the round-trip time, or a little
// more. 0 before the first command.
func (c *conn) RTT() time.Duration { return time.Duration(c.rtt.Load()) }

func (c *conn) Run(ctx context.Context, command string, stdin []byte) (runner.Result, error) {
	if c.stats != nil {
		c.stats.Host(c.label).Commands.Add(1)
	}
	over := make(chan *OutputLimitError, 2)
	stdout := &capped{stream: "stdout", max: MaxStdout, over: over}
	stderr := &capped{stream: "stderr", max: MaxStderr, over: over}
	type exited struct {
		status int
		err    error
	}
	done := make(chan exited, 1)
	go func() {
		st, err := c.exec(command, stdin, stdout, stderr)
		done <- exited{st, err}
	}()
	// A connection the new rules froze never answers again, while a slow
	// host (busy installing packages) still answers keepalives: one
	// unanswered for freezeTimeout ends the wait early.
	frozen := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go c.keepalive(stop, frozen)
	var e exited
	select {
	case e = <-done:
	case <-frozen:
		c.client.Close()
		return runner.Result{Stdout: stdout.bytes(), Stderr: stderr.bytes()}, errFrozen
	case e := <-over:
		// The host goes on printing: stop it, and the connection with it.
		c.client.Close()
		return runner.Result{Stdout: stdout.bytes(), Stderr: stderr.bytes()}, c.tooMuch(e)
	case <-ctx.Done():
		// A frozen connection never answers: stop waiting on it.
		c.client.Close()
		return runner.Result{Stdout: stdout.bytes(), Stderr: stderr.bytes()}, ctx.Err()
	}
	res := runner.Result{Stdout: stdout.bytes(), Stderr: stderr.bytes(), Status: e.status}
	select {
	case e := <-over:
		return res, c.tooMuch(e)
	default:
	}
	if e.err != nil {
		return res, fmt.Errorf("running a command: %w", e.err)
	}
	return res, nil
}

// exec runs command in a session channel of its own and returns its exit
// status. Unlike gossh.Session, which waits for the answer to the exec
// request before it sends any input, it sends stdin right behind the
// request, as OpenSSH's ssh does: the command's input costs no round trip
// of its own. sshd reads the request before the input that follows it, so
// the input reaches the command. Such a request goes without asking for
// an answer (a host that refuses to run the command leaves it unanswered
// until ctx ends); a command without input asks for one, at no cost.
func (c *conn) exec(command string, stdin []byte, stdout, stderr io.Writer) (int, error) {
	opening := time.Now()
	ch, reqs, err := c.client.OpenChannel("session", nil)
	if err != nil {
		return 0, fmt.Errorf("opening a session: %w", err)
	}
	defer ch.Close()
	took := int64(time.Since(opening))
	for old := c.rtt.Load(); (old == 0 || took < old) && !c.rtt.CompareAndSwap(old, took); old = c.rtt.Load() {
	}
	status := make(chan int, 1)
	go func() { status <- exitStatus(reqs) }()
	var out sync.WaitGroup
	out.Add(2)
	go func() { io.Copy(stdout, ch); out.Done() }()
	go func() { io.Copy(stderr, ch.Stderr()); out.Done() }()
	ok, err := ch.SendRequest("exec", stdin == nil, gossh.Marshal(struct{ Command string }{command}))
	if err != nil {
		return 0, err
	}
	if stdin == nil && !ok {
		return 0, errors.New("the host refused to run the command")
	}
	// A command that ends before it read its input says why in its exit
	// status, which matters more than the input that could not be sent.
	_, werr := ch.Write(stdin)
	ch.CloseWrite()
	out.Wait()
	st := <-status
	switch {
	case st >= 0:
		return st, nil
	case werr != nil:
		return 0, fmt.Errorf("sending the command's input: %w", werr)
	}
	return 0, errors.New("the command ended without an exit status")
}

// exitStatus reads a session's requests until the channel closes: the
// exit status, or 128 and the signal's number for a command killed by one
// (as a shell says it), or -1 if the host said neither. Requests that want
// an answer are refused, as OpenSSH does.
func exitStatus(reqs <-chan *gossh.Request) int {
	st := -1
	for req := range reqs {
		switch req.Type {
		case "exit-status":
			var p struct{ Status uint32 }
			if gossh.Unmarshal(req.Payload, &p) == nil {
				st = int(p.Status)
			}
		case "exit-signal":
			var p struct {
				Signal      string
				CoreDumped  bool
				Error, Lang string
			}
			if gossh.Unmarshal(req.Payload, &p) == nil && st < 0 {
				st = 128 + signalNumbers[p.Signal]
			}
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	return st
}

// signalNumbers are the numbers of the signals that end commands, as
// Linux numbers them; another is 128 alone.
var signalNumbers = map[string]int{"HUP": 1, "INT": 2, "KILL": 9, "PIPE": 13, "TERM": 15}

// What piwall reads of one command. The facts of a Pi with thousands of
// rules are a few MiB; more is a broken or hostile host, and reading it
// all would let one host fill the controller's memory.
const (
	MaxStdout = 16 << 20
	MaxStderr = 1 << 20
)

// OutputLimitError is a command that printed more than piwall reads.
type OutputLimitError struct {
	Stream string // "stdout" or "stderr"
	Limit  int    // bytes
}

func (e *OutputLimitError) Error() string {
	return fmt.Sprintf("the command printed more than %d MiB on its %s; piwall stopped reading and closed the connection", e.Limit>>20, e.Stream)
}

func (c *conn) tooMuch(e *OutputLimitError) error {
	return modules.WithHint(e, fmt.Sprintf("log in and see what a command prints there (ssh %s sudo -n true): a login script or a replaced sudo that prints without end breaks every command", c.login))
}

// capped is a command's stdout or stderr, kept up to max bytes; a write
// past it is refused and reported on over, once.
type capped struct {
	stream string
	max    int
	over   chan<- *OutputLimitError
	mu     sync.Mutex
	buf    []byte
	full   bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full || len(c.buf)+len(p) > c.max {
		if !c.full {
			c.full = true
			c.over <- &OutputLimitError{Stream: c.stream, Limit: c.max}
		}
		return 0, errors.New("output limit")
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// ReadFrom reads r into the buffer itself: io.Copy, which the session
// copies the command's output with, would take a buffer of 32 KiB for each
// stream of each command, garbage a fleet's run makes gigabytes of.
func (c *capped) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		c.mu.Lock()
		if c.full {
			c.mu.Unlock()
			return total, errors.New("output limit")
		}
		if cap(c.buf)-len(c.buf) < 512 {
			grown := make([]byte, len(c.buf), 2*cap(c.buf)+1024)
			copy(grown, c.buf)
			c.buf = grown
		}
		// Only this goroutine appends: the spare room is read into
		// without the lock, bytes reads only up to len.
		spare := c.buf[len(c.buf):cap(c.buf)]
		c.mu.Unlock()
		n, err := r.Read(spare)
		if n > 0 {
			if _, werr := c.Write(spare[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// bytes returns a copy: the session may still be writing.
func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf)
}

// freezeTimeout is how long a keepalive may go unanswered.
const freezeTimeout = 5 * time.Second

var errFrozen = errors.New("the connection stopped answering (frozen by the new rules?)")

// keepalive sends a keepalive request every second until stop, and closes
// frozen when one goes unanswered for freezeTimeout.
func (c *conn) keepalive(stop <-chan struct{}, frozen chan<- struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		answered := make(chan struct{})
		go func() {
			c.client.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-stop:
			return
		case <-time.After(freezeTimeout):
			close(frozen)
			return
		}
	}
}

// DialFromHost opens a TCP connection from the host to addr, over a
// direct-tcpip channel of this connection (runner.HostDialer).
func (c *conn) DialFromHost(ctx context.Context, addr string) (net.Conn, error) {
	return c.client.DialContext(ctx, "tcp", addr)
}

func (c *conn) Close() error {
	err := c.client.Close()
	closeAll(c.jumps)
	return err
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
