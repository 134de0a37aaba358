// Package sim simulates fleets larger than the lab, for scale
// measurements: each simulated host is an in-process SSH server (real
// golang.org/x/crypto/ssh) that answers piwall's facts, prepare (the run's
// files on its stdin) and confirm commands from a real ruleset state of its own, as a
// Pi would, without running a shell. It is a stand-in for timing and
// memory only: what piwall does on a real host is tested against the lab.
package sim

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/piwall/piwall/modules"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Fleet is a set of simulated hosts listening on loopback.
type Fleet struct {
	Hosts      []*Host
	Key        string // the operator's private key file
	KnownHosts string // the hosts' keys
	listeners  []net.Listener
}

// Host is one simulated host and its state.
type Host struct {
	Name string
	Addr *net.TCPAddr

	mu         sync.Mutex
	live       [2]string // canonical filter tables, IPv4 and IPv6 ("" before iptables is loaded)
	persisted  [2]string
	generation int
	gens       map[int][2]string // every generation's rulesets, as confirm records them
	installed  bool
	ipset      bool   // installed by an apply whose rules match address sets
	lock       string // the lock file's lines
}

// SetLive makes text (iptables-save output, without comment lines) the
// host's live IPv4 rules, as another tool on the host would.
func (h *Host) SetLive(text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live[0], h.installed = text, true
}

// SetLock makes lines the host's lock file ("" frees it).
func (h *Host) SetLock(lines string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lock = lines
}

// Start starts n hosts, each on its own port of 127.0.0.1, writing the
// operator key and known_hosts into dir. With rtt, each host's bytes reach
// the controller rtt after it sent them, in order: a host on a slow link.
func Start(n int, dir string, rtt time.Duration) (*Fleet, error) {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	_, opPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(opPriv, "sim operator")
	if err != nil {
		return nil, err
	}
	f := &Fleet{Key: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	if err := os.WriteFile(f.Key, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	opSigner, err := ssh.NewSignerFromKey(opPriv)
	if err != nil {
		return nil, err
	}
	operator := opSigner.PublicKey().Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), operator) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	var kh strings.Builder
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Close()
			return nil, err
		}
		h := &Host{Name: fmt.Sprintf("sim-%04d", i+1), Addr: l.Addr().(*net.TCPAddr)}
		f.Hosts = append(f.Hosts, h)
		f.listeners = append(f.listeners, l)
		kh.WriteString(knownhosts.Line([]string{knownhosts.Normalize(h.Addr.String())}, hostKey.PublicKey()) + "\n")
		go h.serve(l, cfg, rtt)
	}
	return f, os.WriteFile(f.KnownHosts, []byte(kh.String()), 0o644)
}

// Close stops every host.
func (f *Fleet) Close() {
	for _, l := range f.listeners {
		l.Close()
	}
}

func (h *Host) serve(l net.Listener, cfg *ssh.ServerConfig, rtt time.Duration) {
	var wait time.Duration
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors (EMFILE) or another passing
			// failure: try again shortly, as net/http does, rather
			// than leave connections in the backlog unanswered.
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			time.Sleep(wait)
			continue
		}
		wait = 0
		if rtt > 0 {
			c = newSlowConn(c, rtt)
		}
		go h.conn(c, cfg)
	}
}

// slowConn writes each chunk delay after it was written, in order, from a
// goroutine of its own: the latency of a slow link, without a cap on the
// bytes in flight.
type slowConn struct {
	net.Conn
	at   time.Duration
	q    chan slowChunk
	done chan struct{}
	once sync.Once
}

type slowChunk struct {
	data []byte
	at   time.Time
}

func newSlowConn(c net.Conn, delay time.Duration) *slowConn {
	s := &slowConn{Conn: c, q: make(chan slowChunk, 256), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ch := range s.q {
			time.Sleep(time.Until(ch.at))
			if _, err := c.Write(ch.data); err != nil {
				c.Close()
				for range s.q {
				}
				return
			}
		}
	}()
	s.at = delay
	return s
}

func (s *slowConn) Write(b []byte) (int, error) {
	s.q <- slowChunk{append([]byte(nil), b...), time.Now().Add(s.at)}
	return len(b), nil
}

// Close sends what is queued, then closes.
func (s *slowConn) Close() error {
	s.once.Do(func() { close(s.q) })
	<-s.done
	return s.Conn.Close()
}

func (h *Host) conn(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() == "direct-tcpip" {
			go forward(nc)
			continue
		}
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions and direct-tcpip only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go h.session(ch, chReqs, c.RemoteAddr().(*net.TCPAddr))
	}
}

// forward serves a direct-tcpip channel, as a jump host does for ssh -J:
// it connects to the address asked for and copies both ways.
func forward(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if ssh.Unmarshal(nc.ExtraData(), &p) != nil {
		nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	c, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		io.Copy(c, ch)
		c.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(ch, c)
	ch.CloseWrite()
	c.Close()
	ch.Close()
}

func (h *Host) session(ch ssh.Channel, reqs <-chan *ssh.Request, from *net.TCPAddr) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			status := h.exec(p.Command, ch, from)
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
			return
		default:
			req.Reply(req.Type == "env", nil)
		}
	}
}

// exec answers one command the way the host's scripts would.
func (h *Host) exec(cmd string, ch ssh.Channel, from *net.TCPAddr) int {
	switch {
	case strings.Contains(cmd, "sh -s --"):
		script, _ := io.ReadAll(ch)
		return h.facts(string(script), ch, from)
	case strings.Contains(cmd, "/prepare.sh"):
		return h.prepare(ch, ch, ch.Stderr())
	case strings.Contains(cmd, "/confirm.sh") && strings.Contains(cmd, " status"):
		ch.Write(modules.FormatStatus(modules.RunStatus{Status: modules.StatusConfirmed}))
		return 0
	case strings.Contains(cmd, "/confirm.sh"):
		return h.confirm(ch)
	case cmd == "yes":
		// As coreutils' yes: a host that prints without end.
		line := bytes.Repeat([]byte("y\n"), 4096)
		for {
			if _, err := ch.Write(line); err != nil {
				return 141
			}
		}
	}
	fmt.Fprintf(ch.Stderr(), "sim: unknown command %q\n", cmd)
	return 127
}

var saves = [2]string{"iptables-save", "ip6tables-save"}

// scriptArgs returns the word after prefix on each line of script that is
// prefix and one word: the facts script's header assigns the marker
// ("marker=WORD"), a line calls name for each name to resolve ("name
// WORD"), one rollback_to for the rules of a generation. A scan of lines,
// not regular expressions: those were a tenth of the simulated fleet's CPU.
func scriptArgs(script, prefix string) []string {
	var out []string
	for line := range strings.Lines(script) {
		arg, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), prefix)
		if ok && arg != "" && !strings.ContainsAny(arg, " \t\r\v\f") {
			out = append(out, arg)
		}
	}
	return out
}

func (h *Host) facts(script string, w io.Writer, from *net.TCPAddr) int {
	m := scriptArgs(script, "marker=")
	if m == nil {
		fmt.Fprintln(w, "sim: no marker in the facts script")
		return 1
	}
	marker := strings.Trim(m[0], "'")
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	sec := func(name string) { fmt.Fprintf(&b, "%s %s\n", marker, name) }
	sec("ssh")
	fmt.Fprintf(&b, "%s %d %s %d\n", from.IP, from.Port, h.Addr.IP, h.Addr.Port)
	sec("tools")
	if h.installed {
		b.WriteString("iptables\nip6tables\niptables-save\nip6tables-save\niptables-restore\nip6tables-restore\nnetfilter-persistent\n")
	}
	b.WriteString("apt-get\ngetent\n")
	if h.ipset {
		b.WriteString("ipset\n")
	}
	for i, fam := range []string{"v4", "v6"} {
		sec(fam)
		if h.live[i] != "" {
			fmt.Fprintf(&b, "# Generated by %s v1.8.9 (nf_tables)\n%s", saves[i], h.live[i])
		}
	}
	sec("resolv")
	b.WriteString("nameserver 127.0.0.53\n")
	sec("generation")
	if h.generation > 0 {
		fmt.Fprintf(&b, "%d\n", h.generation)
	}
	sec("lock")
	b.WriteString(h.lock)
	sec("persisted")
	for i := range h.persisted {
		if h.persisted[i] == "" {
			b.WriteString("none\n")
		} else {
			b.WriteString(digest(h.persisted[i]) + "\n")
		}
	}
	if m := scriptArgs(script, "rollback_to "); m != nil {
		g := h.generation - 1
		if arg := strings.Trim(m[0], "'"); arg != "previous" {
			g, _ = strconv.Atoi(arg)
		}
		rules, ok := h.gens[g]
		for i, fam := range []string{"v4", "v6"} {
			sec("generation-" + fam)
			fmt.Fprintf(&b, "%d\n", g)
			if ok {
				b.WriteString(rules[i])
			} else {
				b.WriteString("error\n")
			}
		}
	}
	for _, n := range scriptArgs(script, "name ") {
		name := strings.Trim(n, "'")
		sum := sha256.Sum256([]byte(name))
		sec("name")
		fmt.Fprintf(&b, "%s\n198.51.100.%d STREAM %s\n2001:db8::%x STREAM\n", name, sum[0], name, sum[1])
	}
	sec("end")
	io.WriteString(w, b.String())
	return 0
}

// prepare unpacks the run's files from its stdin, checks them against
// their sums and makes the new rules live, as prepare's command and the
// applier do together on a host.
func (h *Host) prepare(stdin io.Reader, w, errw io.Writer) int {
	files := map[string][]byte{}
	tr := tar.NewReader(stdin)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		var data []byte
		if err == nil {
			data, err = io.ReadAll(tr)
		}
		if err != nil {
			fmt.Fprintln(errw, "sim: tar:", err)
			return modules.ExitUnpack
		}
		files[hdr.Name] = data
	}
	sums, ok := files["SHA256SUMS"]
	if !ok {
		fmt.Fprintln(errw, "sim: no SHA256SUMS in the run's files")
		return 1
	}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, _ := strings.Cut(line, "  ")
		got := sha256.Sum256(files[name])
		if hex.EncodeToString(got[:]) != sum {
			fmt.Fprintf(errw, "sim: %s does not match its sum\n", name)
			return 1
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	report := modules.PrepareReport{Installed: !h.installed || (len(files["sets"]) > 0 && !h.ipset), DeadMan: modules.DeadManSystemd, Started: true}
	h.installed = true
	h.ipset = h.ipset || len(files["sets"]) > 0
	h.live = [2]string{string(files["new.v4"]), string(files["new.v6"])}
	w.Write(modules.FormatPrepare(report))
	return 0
}

func (h *Host) confirm(w io.Writer) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.persisted = h.live
	h.generation++
	if h.gens == nil {
		h.gens = map[int][2]string{}
	}
	h.gens[h.generation] = h.live
	w.Write(modules.FormatConfirm(h.generation))
	return 0
}

func digest(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}
