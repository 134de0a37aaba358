package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
)

// proxyCommand starts a ProxyCommand as ssh does (sshconnect.c
// ssh_proxy_connect): "exec COMMAND" run by the user's $SHELL, else
// /bin/sh, its stdin and stdout the connection. Closing the connection
// ends the command.
func proxyCommand(command string) (net.Conn, error) {
	if runtime.GOOS == "windows" {
		return nil, errors.New("ProxyCommand is not supported on Windows: use ProxyJump")
	}
	shell := os.Getenv("SHELL")
	if shell == "" {
		shell = "/bin/sh"
	}
	// Pipes of our own, not cmd.StdinPipe: *os.File pipes take the
	// deadlines that bound the handshake.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c := &cmdConn{command: command, in: inW, out: outR}
	c.cmd = exec.Command(shell, "-c", "exec "+command)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = inR, outW, &c.stderr
	err = c.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("starting %q: %w", command, err)
	}
	c.done = make(chan struct{})
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// cmdConn is a ProxyCommand's stdio as a net.Conn.
type cmdConn struct {
	command string
	cmd     *exec.Cmd
	in      *os.File // the command's stdin
	out     *os.File // its stdout
	stderr  lockedBuffer
	done    chan struct{}
	waitErr error
	once    sync.Once
}

func (c *cmdConn) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err != nil && n == 0 {
		err = c.ended(err)
	}
	return n, err
}

func (c *cmdConn) Write(p []byte) (int, error) {
	n, err := c.in.Write(p)
	if err != nil {
		err = c.ended(err)
	}
	return n, err
}

// ended explains a read or write that failed because the command ended,
// with what it printed on stderr.
func (c *cmdConn) ended(err error) error {
	select {
	case <-c.done:
	case <-time.After(100 * time.Millisecond):
		return err
	}
	status := "exited"
	if c.waitErr != nil {
		status = c.waitErr.Error()
	}
	msg := strings.TrimSpace(c.stderr.String())
	if msg == "" {
		return fmt.Errorf("ProxyCommand %q ended (%s)", c.command, status)
	}
	return fmt.Errorf("ProxyCommand %q ended (%s): %s", c.command, status, msg)
}

func (c *cmdConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		c.out.Close()
		select {
		case <-c.done:
		case <-time.After(time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return nil
}

func (c *cmdConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4zero} }
func (c *cmdConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

func (c *cmdConn) SetDeadline(t time.Time) error {
	c.in.SetWriteDeadline(t)
	return c.out.SetReadDeadline(t)
}
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return c.out.SetReadDeadline(t) }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return c.in.SetWriteDeadline(t) }

// lockedBuffer keeps the first 4 KiB a command prints on stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
