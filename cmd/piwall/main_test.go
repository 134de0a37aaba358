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
		{"version", []string{"version"}, 0, `^piwall \S+ \(go\S+ \w+/\w+\)\n$`, `^$`},
		{"version takes no arguments", []string{"version", "x"}, 1, `^$`, `takes no arguments, got "x"`},
		{"help lists the commands", []string{"--help"}, 0, `(?s)^piwall locks.*\n  version +print piwall's version\n.*exit codes: `, `^$`},
		{"a command's help names its flags as typed", []string{"apply", "-h"}, 0, `^$`, `(?s)^usage: piwall apply .*\n  --canary N\n +N hosts done first.*\n  --var-file FILE\n`},
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

// Every command's -h reads as typed: a usage line, what it does, and each
// flag as --name, with no sentinel default (-1 means "the plan's value").
func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		if c.name == "version" || c.name == "completion" {
			continue // no flags
		}
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runPiwall(t, c.name, "-h")
			if code != 0 || stdout != "" {
				t.Fatalf("exit code %d, stdout %q: want 0 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, "usage: piwall "+c.name+" ") || !strings.Contains(stderr, "\nflags:\n  --") {
				t.Errorf("got\n%s\nwant a usage line and flags as --name", stderr)
			}
			if m := regexp.MustCompile(`\(default -1\)|\n  -[^-]| (VALUE|STRING|INT)\n`).FindString(stderr); m != "" {
				t.Errorf("help has %q:\n%s", m, stderr)
			}
		})
	}
}
