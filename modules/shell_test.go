package modules

import (
	"os/exec"
	"strings"
	"testing"
)

// shellEcho has /bin/sh print the one word Quote(s) makes of s.
func shellEcho(t *testing.T, s string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "printf '%s|' "+Quote(s)).Output()
	if err != nil {
		t.Fatalf("sh -c with %q: %v", Quote(s), err)
	}
	return string(out)
}

func TestQuote(t *testing.T) {
	for _, s := range []string{
		"plain", "", "a b", "a;rm -rf /", "$(id)", "`id`", "it's", `"double"`, "new\nline", "tab\there",
		"back\\slash", "'", "''", "-n", "*", "~root", "a&&b", "x|y", "${HOME}", "!", "#comment", "\x01ctl",
	} {
		t.Run(s, func(t *testing.T) {
			if got := shellEcho(t, s); got != s+"|" {
				t.Errorf("sh printed %q for Quote(%q) = %s, want the value itself", got, s, Quote(s))
			}
		})
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"a;rm -rf /", "$(id)", "it's", "new\nline", "", "'\"`$\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // no shell word can hold NUL
		}
		if got := shellEcho(t, s); got != s+"|" {
			t.Errorf("sh printed %q for Quote(%q) = %s", got, s, Quote(s))
		}
	})
}
