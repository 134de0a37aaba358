package main

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// Text that came from a Pi (rule comments, names and CNAMEs, the lock,
// errors a command printed) can hold terminal escape sequences that would
// rewrite or hide lines of a plan. Everything piwall prints goes through a
// termSafe writer, which shows each control character as an escape (\u001b),
// as JSON would; only piwall's own sequences (the live progress, coloured
// diagnostics of local files) go to the terminal raw.
type termSafe struct{ w io.Writer }

func (s termSafe) Write(p []byte) (int, error) {
	if _, err := s.w.Write(escapeControls(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// raw is the writer under a termSafe one: for what piwall itself writes
// to a terminal, and to ask whether it is one.
func raw(w io.Writer) io.Writer {
	if s, ok := w.(termSafe); ok {
		return s.w
	}
	return w
}

// escapeControls returns p with every control character but newline and
// tab, the C1 controls, the bidirectional overrides (which reorder what a
// line shows) and invalid UTF-8 escaped: \uXXXX, or \xNN for a stray byte.
// Escaped text stays valid inside a JSON string.
func escapeControls(p []byte) []byte {
	clean := true
	for i := 0; i < len(p) && clean; {
		r, n := utf8.DecodeRune(p[i:])
		clean = !unsafeRune(r, n)
		i += n
	}
	if clean {
		return p
	}
	out := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = fmt.Appendf(out, `\x%02x`, p[i])
		case unsafeRune(r, n):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[i:i+n]...)
		}
		i += n
	}
	return out
}

func unsafeRune(r rune, n int) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r == utf8.RuneError && n == 1, r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// safe is escapeControls for a string.
func safe(s string) string { return string(escapeControls([]byte(s))) }
