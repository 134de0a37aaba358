package plans

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// FuzzLoad feeds arbitrary bytes to Load as a one-file plan. Whatever the
// input, Load must not panic, every diagnostic must name its problem and
// point inside the file, the same input must give the same diagnostics, and
// a plan without errors must give every host a policy.
//
// The seeds are the readable plans in testdata/fuzz/FuzzLoad (valid and
// malformed, and the inputs that once crashed Load) and every malformed
// case's site.hcl. Run it with
//
//	go test ./plans -run '^$' -fuzz FuzzLoad -fuzztime 60s
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzLoad", "*"))
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/fuzz/FuzzLoad: the glob matched nothing")
	}
	for _, c := range malformedCases(f) {
		f.Add(c.files["site.hcl"])
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		path := filepath.Join(t.TempDir(), "site.hcl")
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		p, diags := Load(path, Options{})
		checkLoaded(t, path, src, p, diags)

		_, again := Load(path, Options{})
		if got, want := diagLines(again), diagLines(diags); !slices.Equal(got, want) {
			t.Errorf("a second Load reports other diagnostics\ngot:\n\t%s\nwant:\n\t%s",
				strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	})
}

// checkLoaded checks what Load returned for the one-file plan src at path.
func checkLoaded(t *testing.T, path string, src []byte, p *Plan, diags hcl.Diagnostics) {
	t.Helper()
	if p == nil {
		t.Fatal("Load returned a nil Plan")
	}
	for _, d := range diags {
		if d.Severity != hcl.DiagError && d.Severity != hcl.DiagWarning {
			t.Errorf("%s: severity %v, want error or warning", diagLine(d), d.Severity)
		}
		if strings.TrimSpace(d.Summary) == "" {
			t.Errorf("diagnostic without a summary: %+v", d)
		}
		if d.Subject != nil {
			// A diagnostic may point into a file the plan read (an
			// Ansible inventory), which is among its Files then.
			in, inSrc := path, src
			if f := p.Files[d.Subject.Filename]; d.Subject.Filename != path && f != nil {
				in, inSrc = d.Subject.Filename, f.Bytes
			}
			if msg := outside(*d.Subject, in, inSrc); msg != "" {
				t.Errorf("%s: subject %s: %s", diagLine(d), d.Subject, msg)
			}
		}
	}
	if diags.HasErrors() {
		return
	}
	for _, h := range p.Hosts {
		if h.Policy == nil {
			t.Errorf("host %q: no errors, but a nil Policy", h.Name)
			continue
		}
		if len(h.Policy.Allowlists) == 0 {
			t.Errorf("host %q: no errors, but no allowlist in its Policy", h.Name)
		}
	}
}

// outside says how rng fails to lie within the file src at path, or "".
func outside(rng hcl.Range, path string, src []byte) string {
	switch {
	case rng.Filename != path:
		return "in another file, want " + path
	case rng.Start.Line < 1 || rng.Start.Column < 1:
		return "starts before line 1, column 1"
	case rng.End.Line < rng.Start.Line:
		return "ends before it starts"
	case rng.Start.Byte < 0 || rng.Start.Byte > rng.End.Byte:
		return "byte offsets out of order"
	case rng.End.Byte > len(src):
		return "ends past the end of the file"
	}
	return ""
}
