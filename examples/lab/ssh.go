//go:build linux

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Tests reach a Pi the way an operator does: over SSH as pi, with the lab key,
// host keys checked against the lab's known_hosts. These helpers are for
// checking a Pi from outside; piwall itself has its own SSH client.

// Dial opens an SSH connection to p.
func (l *Lab) Dial(ctx context.Context, p Pi) (*ssh.Client, error) {
	pem, err := os.ReadFile(l.Key())
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("lab key %s: %w", l.Key(), err)
	}
	check, err := knownhosts.New(l.KnownHosts())
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            "pi",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check,
		Timeout:         5 * time.Second,
	}
	addr := net.JoinHostPort(p.Addrs.V4.String(), "22")
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// Run runs a shell command on p over a new SSH connection and returns its
// stdout; a failure carries the command, its exit status and its stderr.
func (l *Lab) Run(ctx context.Context, p Pi, cmd string) (string, error) {
	c, err := l.Dial(ctx, p)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.Name, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		c.Close()
		err = ctx.Err()
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %q: %w: %s", p.Name, cmd, err, tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

// ProveOwnNetns returns nil only if commands run over SSH on p live in p's
// own network namespace, which is not the one this process runs in (the
// machine's). Tests call it before they touch a Pi's iptables.
func (l *Lab) ProveOwnNetns(ctx context.Context, p Pi) error {
	remote, err := l.Run(ctx, p, "stat -L -c %i /proc/self/ns/net")
	if err != nil {
		return err
	}
	own, err := inode("/run/netns/" + p.Netns)
	if err != nil {
		return err
	}
	here, err := inode("/proc/self/ns/net")
	if err != nil {
		return err
	}
	if strings.TrimSpace(remote) != strconv.FormatUint(own, 10) || own == here {
		return fmt.Errorf("%s: commands over SSH run in network namespace %s; want %d (its own), never %d (this machine's)",
			p.Name, strings.TrimSpace(remote), own, here)
	}
	return nil
}

func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", path)
	}
	return st.Ino, nil
}

// StopSSHD stops p's sshd: new connections are refused, open sessions go
// on. StartSSHD brings it back.
func (l *Lab) StopSSHD(p Pi) error { return p.signal(syscall.SIGUSR2) }

// StartSSHD starts p's sshd again after StopSSHD, and waits for it.
func (l *Lab) StartSSHD(ctx context.Context, p Pi) error {
	if err := p.signal(syscall.SIGUSR1); err != nil {
		return err
	}
	return waitSSH(ctx, p, filepath.Join(l.Dir, p.Name, "console.log"))
}

func (p Pi) signal(sig syscall.Signal) error {
	if !p.Init.alive() {
		return fmt.Errorf("%s: its init (pid %d) is gone", p.Name, p.Init.Pid)
	}
	return syscall.Kill(p.Init.Pid, sig)
}

// Reboot restarts a Pi as a power cycle would: every process ends, the
// network stack (and so its firewall tables) is made anew, and the Pi boots
// again from the same root file system. On a systemd Pi,
// netfilter-persistent then restores the persisted rules.
func (l *Lab) Reboot(ctx context.Context, name string) error {
	i := l.index(name)
	if i < 0 {
		return fmt.Errorf("no Pi %s in the lab", name)
	}
	p := &l.Pis[i]
	procs := []Proc{p.Init}
	if pids, err := netnsPids(ctx, p.Netns); err == nil {
		for _, pid := range pids {
			if pr, err := procOf(pid); err == nil {
				procs = append(procs, pr)
			}
		}
	}
	for _, pr := range procs {
		pr.kill()
	}
	if err := waitGone(procs, 10*time.Second); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	n := node{netns: p.Netns, addrs: []netip.Addr{p.Addrs.V4, p.Addrs.V6}}
	cmd := exec.CommandContext(ctx, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("link del %s\nnetns del %s\n", p.Netns, p.Netns) + joinBatch(n))
	if err := run(cmd); err != nil {
		return fmt.Errorf("%s: a new network stack: %w", name, err)
	}
	if err := configureNodes(ctx, []node{n}); err != nil {
		return err
	}
	dir := filepath.Join(l.Dir, p.Name)
	b, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	if err != nil {
		return err
	}
	var spec piSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	if spec.Systemd {
		if err := removeCgroupTree(spec.Cgroup); err != nil {
			return err
		}
		if err := os.MkdirAll(spec.Cgroup, 0o755); err != nil {
			return err
		}
	}
	if p.Init, err = startPi(ctx, p.Netns, filepath.Join(dir, "spec.json"), spec.Console, spec); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	return waitSSH(ctx, *p, spec.Console)
}

func (l *Lab) index(name string) int {
	for i, p := range l.Pis {
		if p.Name == name {
			return i
		}
	}
	return -1
}
