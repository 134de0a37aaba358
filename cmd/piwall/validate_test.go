package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestValidateGolden runs piwall validate, as text and with --json, on each plan
// of testdata/validate (a directory of .hcl files), and holds the exit
// code, stdout and stderr to text.golden and json.golden beside the plan.
// -update rewrites them.
//
//	go test ./cmd/piwall -run ValidateGolden [-update]
func TestValidateGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "validate", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 4 {
		t.Fatalf("testdata/validate holds %d cases, want at least 4", len(cases))
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			for _, view := range []string{"text", "json"} {
				args := []string{"validate", dir}
				if view == "json" {
					args = append(args, "--json")
				}
				code, stdout, stderr := runPiwall(t, args...)
				got := fmt.Sprintf("exit %d\n-- stdout --\n%s-- stderr --\n%s", code, stdout, stderr)
				golden := filepath.Join(dir, view+".golden")
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (go test ./cmd/piwall -run ValidateGolden -update writes it)", err)
				}
				if got != string(want) {
					t.Errorf("piwall %s:\n%s\nwant (%s):\n%s", strings.Join(args[1:], " "), got, golden, want)
				}
				if view == "json" {
					checkValidateJSON(t, code, stdout, stderr)
				}
			}
		})
	}
}

// checkValidateJSON holds validate --json to what README.md promises: the
// counts agree with the diagnostics, valid with the exit code, and each
// range's line and column are those of its byte offset in its file.
func checkValidateJSON(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	var doc jsonValidate
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, stdout)
	}
	if stderr != "" {
		t.Errorf("validate --json wrote to stderr: %q", stderr)
	}
	errs, warns := 0, 0
	for _, d := range doc.Diagnostics {
		switch d.Severity {
		case "error":
			errs++
		case "warning":
			warns++
		default:
			t.Errorf("severity %q", d.Severity)
		}
		if d.Range == nil {
			continue
		}
		src, err := os.ReadFile(d.Range.Filename)
		if err != nil {
			t.Fatalf("diagnostic %q: %v", d.Summary, err)
		}
		for _, p := range []jsonPos{d.Range.Start, d.Range.End} {
			if p.Byte > len(src) {
				t.Fatalf("diagnostic %q: byte %d past the end of %s", d.Summary, p.Byte, d.Range.Filename)
			}
			before := src[:p.Byte]
			line := strings.Count(string(before), "\n") + 1
			col := utf8.RuneCount(before[strings.LastIndexByte(string(before), '\n')+1:]) + 1
			if line != p.Line || col != p.Column {
				t.Errorf("diagnostic %q: byte %d is at %d:%d, the range says %d:%d", d.Summary, p.Byte, line, col, p.Line, p.Column)
			}
		}
		if s := d.Snippet; s != nil && !strings.Contains(string(src), s.Code) {
			t.Errorf("diagnostic %q: snippet %q is not in %s", d.Summary, s.Code, d.Range.Filename)
		}
	}
	if errs != doc.ErrorCount || warns != doc.WarningCount || doc.Valid != (errs == 0) || (code == 0) != doc.Valid || doc.FormatVersion != "1" {
		t.Errorf("validate --json: exit %d, format_version %q, valid %v, error_count %d, warning_count %d; the diagnostics hold %d errors and %d warnings",
			code, doc.FormatVersion, doc.Valid, doc.ErrorCount, doc.WarningCount, errs, warns)
	}
}
