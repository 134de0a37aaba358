package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
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
