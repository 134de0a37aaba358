package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/piwall/piwall/plans"
)

func runValidate(_ context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var pf planFlags
	pf.register(fs)
	asJSON := fs.Bool("json", false, "print the diagnostics as JSON on stdout (see README.md)")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path, err := planPath(positional)
	if err != nil {
		return err
	}
	p, diags := plans.Load(path, pf.options())
	if *asJSON {
		if err := writeJSONValue(std.out, jsonValidation(p.Files, diags)); err != nil {
			return err
		}
		if diags.HasErrors() {
			return errDiagnostics
		}
		return nil
	}
	writeDiagnostics(std.errOut, p.Files, diags, pf.noColor)
	if diags.HasErrors() {
		return errDiagnostics
	}
	fmt.Fprintf(std.out, "The plan is valid: %s, %s, %s.\n",
		count(len(p.Hosts), "host"), count(len(p.Allowlists), "allowlist"), count(warnings(diags), "warning"))
	return nil
}

func warnings(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			n++
		}
	}
	return n
}

func count(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
