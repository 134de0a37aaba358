package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/piwall/piwall/plans"
)

// listFlag is a flag that may be given many times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// planFlags are the flags of every command that reads a plan.
type planFlags struct {
	vars, varFiles listFlag
	noColor        bool
}

func (p *planFlags) register(fs *flag.FlagSet) {
	fs.Var(&p.vars, "var", "set a variable: --var `NAME=VALUE` (repeatable)")
	fs.Var(&p.varFiles, "var-file", "read variables from `FILE`, HCL lines of NAME = VALUE (repeatable)")
	fs.BoolVar(&p.noColor, "no-color", false, "no colour in the output (also: NO_COLOR)")
}

func (p *planFlags) options() plans.Options {
	return plans.Options{Vars: p.vars, VarFiles: p.varFiles, Environ: os.Environ()}
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (piwall render site.hcl --host pi-01): the flag
// package stops at the first positional argument, so parsing starts again
// after each one.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newFlagSetHook, when set, sees every flag set made: completion reads the
// commands' flags through it.
var newFlagSetHook func(*flag.FlagSet)

// newFlagSet makes a command's flag set, printing its usage on -h.
func newFlagSet(c *command, std stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("piwall "+c.name, flag.ContinueOnError)
	if newFlagSetHook != nil {
		newFlagSetHook(fs)
	}
	fs.SetOutput(std.errOut)
	fs.Usage = func() { printCommandUsage(std.errOut, c, fs) }
	return fs
}

// printCommandUsage is `piwall NAME -h`: the usage line, what the command
// does, and its flags as they are typed (--name VALUE), each with its help
// on the line below. Defaults are shown only where they mean something:
// the help of a flag whose default comes from the plan says so itself.
func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: piwall %s %s\n", c.name, c.usage)
	if c.long != "" {
		b.WriteString("\n" + c.long + "\n")
	} else {
		b.WriteString("\n" + strings.ToUpper(c.short[:1]) + c.short[1:] + ".\n")
	}
	b.WriteString("\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		value, help := flag.UnquoteUsage(f)
		if value == "value" {
			value = "VALUE"
		}
		fmt.Fprintf(&b, "  --%s", f.Name)
		if value != "" {
			b.WriteString(" " + strings.ToUpper(value))
		}
		switch f.DefValue {
		case "", "0", "-1", "false", "[]":
		default:
			help += " (default " + f.DefValue + ")"
		}
		b.WriteString("\n        " + help + "\n")
	})
	io.WriteString(w, b.String())
}

// planPath is the plan argument: the current directory when none is given.
func planPath(positional []string) (string, error) {
	switch len(positional) {
	case 0:
		return ".", nil
	case 1:
		return positional[0], nil
	}
	return "", fmt.Errorf("one plan path at most, got %q", positional)
}

// loadPlan loads the plan at path and prints its diagnostics; errors among
// them make errDiagnostics.
func loadPlan(path string, pf *planFlags, std stdio) (*plans.Plan, error) {
	p, diags := plans.Load(path, pf.options())
	writeDiagnostics(std.errOut, p.Files, diags, pf.noColor)
	if diags.HasErrors() {
		return nil, errDiagnostics
	}
	return p, nil
}

// writeDiagnostics prints diagnostics once, with the source snippet of each,
// in colour only on a terminal and without NO_COLOR or --no-color.
func writeDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, noColor bool) {
	if len(diags) == 0 {
		return
	}
	color := !noColor && os.Getenv("NO_COLOR") == "" && isTerminal(w)
	if color {
		w = raw(w) // local files; HCL's colours must reach the terminal
	}
	width := uint(100)
	if f, ok := w.(*os.File); ok && color {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			width = uint(cols)
		}
	}
	hcl.NewDiagnosticTextWriter(w, files, width, color).WriteDiagnostics(diags)
}

func isTerminal(w io.Writer) bool {
	f, ok := raw(w).(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// errDiagnostics is returned by a command whose diagnostics, already
// printed, include errors: the exit code is 1 and nothing more is said.
var errDiagnostics = fmt.Errorf("the plan has errors")
