package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// runPiwall runs piwall in-process with its own stdio.
func runPiwall(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // a regular expression
		wantStderr string // a regular expression
	}{
		{"version", []string{"version"}, 0, `^piwall \S+ \(go\S+ linux/\w+\)\n$`, `^$`},
		{"version takes no arguments", []string{"version", "x"}, 1, `^$`, `takes no arguments, got "x"`},
		{"help lists the commands", []string{"--help"}, 0, `^$`, `piwall version\s+print piwall's version`},
		{"no command is an error", nil, 1, `^$`, `usage:`},
		{"unknown command", []string{"frobnicate"}, 1, `^$`, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runPiwall(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !regexp.MustCompile(tt.wantStdout).MatchString(stdout) {
				t.Errorf("stdout: got %q, want a match for %s", stdout, tt.wantStdout)
			}
			if !regexp.MustCompile(tt.wantStderr).MatchString(stderr) {
				t.Errorf("stderr: got %q, want a match for %s", stderr, tt.wantStderr)
			}
		})
	}
}
