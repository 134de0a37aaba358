package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/plans"
)

func runFmt(_ context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	check := fs.Bool("check", false, "change nothing; list unformatted files and exit 1 if there are any")
	noColor := fs.Bool("no-color", false, "no colour in the output (also: NO_COLOR)")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path, err := planPath(positional)
	if err != nil {
		return err
	}
	names, err := plans.PlanFiles(path)
	if err != nil {
		return err
	}
	var diags hcl.Diagnostics
	files := map[string]*hcl.File{}
	unformatted := 0
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		out, d := plans.Format(src, name)
		if d.HasErrors() {
			diags = append(diags, d...)
			files[name] = &hcl.File{Bytes: src}
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		unformatted++
		fmt.Fprintln(std.out, name)
		if !*check {
			if err := os.WriteFile(name, out, 0o644); err != nil {
				return err
			}
		}
	}
	writeDiagnostics(std.errOut, files, diags, *noColor)
	if diags.HasErrors() {
		return errDiagnostics
	}
	if *check && unformatted > 0 {
		return modules.WithHint(fmt.Errorf("%s not formatted", count(unformatted, "file")), "piwall fmt "+path)
	}
	return nil
}
