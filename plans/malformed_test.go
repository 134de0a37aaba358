package plans

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/malformed/*.txtar from what Load reports")

// A malformed case is one txtar file under testdata/malformed: the plan's
// files (site.hcl, and more .hcl files for a directory plan, and the data
// files they read: a CSV, an Ansible inventory), optionally a
// "vars" section of --var flags (NAME=VALUE, one a line), and a "want"
// section: every diagnostic Load reports, in order, one a line, as
//
//	error|warning FILE:LINE:COL: Summary
//
// with "-" in place of FILE:LINE:COL for a diagnostic without a subject.
type malformedCase struct {
	name  string
	path  string // the txtar file
	files map[string][]byte
	vars  []string
	want  []string
}

// malformedCases reads every case under testdata/malformed, and fails when
// there is none: a loader that finds nothing must not pass.
func malformedCases(tb testing.TB) []malformedCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "malformed", "*.txtar"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) == 0 {
		tb.Fatal("no cases in testdata/malformed: the glob matched nothing")
	}
	var cases []malformedCase
	for _, path := range paths {
		cases = append(cases, readMalformedCase(tb, path))
	}
	return cases
}

func readMalformedCase(tb testing.TB, path string) malformedCase {
	tb.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	c := malformedCase{
		name:  strings.TrimSuffix(filepath.Base(path), ".txtar"),
		path:  path,
		files: map[string][]byte{},
	}
	for _, f := range ar.Files {
		switch {
		case f.Name == "want":
			c.want = lines(f.Data)
		case f.Name == "vars":
			c.vars = lines(f.Data)
		default:
			// .hcl files, and the data files they read (a CSV, an
			// Ansible inventory).
			c.files[f.Name] = f.Data
		}
	}
	if _, ok := c.files["site.hcl"]; !ok {
		tb.Fatalf("%s: no site.hcl section", path)
	}
	return c
}

// lines splits a section into its non-empty lines.
func lines(data []byte) []string {
	var out []string
	for l := range strings.SplitSeq(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// load writes the case's files to a new directory and loads them: site.hcl
// alone as a file plan, several files as a directory plan.
func (c malformedCase) load(t *testing.T) (*Plan, hcl.Diagnostics) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range c.files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := dir
	hcls := 0
	for name := range c.files {
		if strings.HasSuffix(name, ".hcl") {
			hcls++
		}
	}
	if hcls == 1 {
		path = filepath.Join(dir, "site.hcl")
	}
	return Load(path, Options{Vars: c.vars})
}

// diagLine is a diagnostic as a want line.
func diagLine(d *hcl.Diagnostic) string {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	at := "-"
	if d.Subject != nil {
		at = fmt.Sprintf("%s:%d:%d", filepath.Base(d.Subject.Filename), d.Subject.Start.Line, d.Subject.Start.Column)
	}
	return fmt.Sprintf("%s %s: %s", sev, at, d.Summary)
}

func diagLines(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		out = append(out, diagLine(d))
	}
	return out
}

// describe lists diagnostics with their details, for a failure message.
func describe(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "\t%s\n\t\t%s\n", diagLine(d), d.Detail)
	}
	return b.String()
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			p, diags := c.load(t)
			if p == nil {
				t.Fatal("Load returned a nil Plan")
			}
			got := diagLines(diags)
			if *update {
				writeWant(t, c, got)
				t.Logf("%s rewritten:\n%s", c.path, describe(diags))
				return
			}
			if len(c.want) == 0 {
				t.Fatalf("%s has no want lines: a malformed plan must be reported", c.path)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("diagnostics differ\ngot:\n\t%s\nwant:\n\t%s\ngot, with details:\n%s",
					strings.Join(got, "\n\t"), strings.Join(c.want, "\n\t"), describe(diags))
			}
			for _, d := range diags {
				if d.Detail == "" {
					t.Errorf("%s: no Detail saying what to write instead", diagLine(d))
				}
			}
			if !diags.HasErrors() && len(p.Hosts) == 0 {
				t.Errorf("no errors, but no hosts either")
			}
		})
	}
}

// writeWant rewrites the want section of c's file, keeping the rest.
func writeWant(t *testing.T, c malformedCase, got []string) {
	t.Helper()
	ar, err := txtar.ParseFile(c.path)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(strings.Join(got, "\n") + "\n")
	found := false
	for i := range ar.Files {
		if ar.Files[i].Name == "want" {
			ar.Files[i].Data, found = want, true
		}
	}
	if !found {
		ar.Files = append(ar.Files, txtar.File{Name: "want", Data: want})
	}
	out := txtar.Format(ar)
	if old, err := os.ReadFile(c.path); err == nil && bytes.Equal(old, out) {
		return
	}
	if err := os.WriteFile(c.path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
