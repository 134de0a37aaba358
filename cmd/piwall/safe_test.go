package main

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeControls(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text\n\tindented é ✓\n", "plain text\n\tindented é ✓\n"},
		{"\x1b[2K\x1b[1Ahidden", `\u001b[2K\u001b[1Ahidden`},
		{"over\rwrite", `over\u000dwrite`},
		{"bell\a del\x7f", `bell\u0007 del\u007f`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"bidi \u202eevil\u2069", `bidi \u202eevil\u2069`},
		{"stray \xff byte", `stray \xff byte`},
	} {
		if got := safe(tt.in); got != tt.want {
			t.Errorf("safe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzEscapeControls(f *testing.F) {
	for _, s := range []string{"", "a\nb", "\x1b]0;title\a", "\xe2\x80", "\u202e", "\u0085"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		out := escapeControls(p)
		if !utf8.Valid(out) {
			t.Fatalf("escaped %q is not UTF-8: %q", p, out)
		}
		for i := 0; i < len(out); {
			r, n := utf8.DecodeRune(out[i:])
			if unsafeRune(r, n) {
				t.Fatalf("escaped %q still holds %U: %q", p, r, out)
			}
			i += n
		}
		clean := true
		for i := 0; i < len(p); {
			r, n := utf8.DecodeRune(p[i:])
			clean = clean && !unsafeRune(r, n)
			i += n
		}
		if clean && string(out) != string(p) {
			t.Fatalf("clean %q changed to %q", p, out)
		}
	})
}

// A host's rule comments and lock reach the plan escaped: they cannot
// clear or rewrite the lines around them.
func TestPlanEscapesHostText(t *testing.T) {
	f, dir := startSim(t, 1)
	site := simSite(t, f, dir, "tcp/443")
	f.Hosts[0].SetLive("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -s 192.0.2.9/32 -m comment --comment \"\x1b[1A\x1b[2Kfine\" -j ACCEPT\nCOMMIT\n")
	f.Hosts[0].SetLock("run=0123\noperator=\x1b]0;owned\a@x\nsince=1700000000\nexpires=1700000600\n")
	for _, args := range [][]string{{"plan", site}, {"plan", site, "--json"}} {
		var out, errOut strings.Builder
		run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		all := out.String() + errOut.String()
		if strings.ContainsAny(all, "\x1b\a") {
			t.Errorf("%s: raw control characters reach the terminal:\n%q", strings.Join(args, " "), all)
		}
		for _, want := range []string{`\u001b[1A\u001b[2Kfine`, `\u001b]0;owned\u0007@x`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: no %q in\n%s", strings.Join(args, " "), want, out.String())
			}
		}
	}
}
