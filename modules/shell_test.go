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

// shellWord reads one word of POSIX shell made only of bare safe
// characters and single-quoted strings joined by \' (what Quote writes), as
// sh would; it reports false for anything else, such as an unclosed quote.
func shellWord(w string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(w); {
		switch c := w[i]; {
		case c == '\'':
			end := strings.IndexByte(w[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(w[i+1 : i+1+end])
			i += end + 2
		case c == '\\' && i+1 < len(w) && w[i+1] == '\'':
			b.WriteByte('\'')
			i += 2
		case strings.IndexByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+", c) >= 0:
			b.WriteByte(c)
			i++
		default:
			return "", false // a character the shell would treat specially
		}
	}
	return b.String(), true
}

// FuzzQuote checks, for any value, that Quote makes one shell word that
// reads back as the value. TestQuote checks the same with the real sh.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"a;rm -rf /", "$(id)", "it's", "new\nline", "", "'\"`$\\", "''", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		got, ok := shellWord(q)
		if !ok || got != s {
			t.Errorf("Quote(%q) = %s reads back as %q (a single word: %v)", s, q, got, ok)
		}
	})
}
