//go:build linux

package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// run runs cmd and, when it fails, says which command failed, how, and what
// it printed on stderr.
func run(cmd *exec.Cmd) error {
	_, err := output(cmd)
	return err
}

// output runs cmd and returns its stdout; on failure the error carries the
// command line, its exit status and its stderr.
func output(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.Bytes(), &CommandError{Args: cmd.Args, Status: exit.ExitCode(), Stderr: tail(stderr.String(), 2000)}
	}
	return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
}

// CommandError is a command that ran and failed.
type CommandError struct {
	Args   []string
	Status int
	Stderr string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", strings.Join(e.Args, " "), e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// tail keeps the last n bytes of s, where a failing command says why.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
