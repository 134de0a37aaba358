package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one piwall subcommand: its usage line, its help, and what it does.
type command struct {
	name  string
	usage string // the arguments after "piwall NAME"
	short string // one line for `piwall --help`
	run   func(ctx context.Context, args []string, std stdio) error
}

// stdio is where a command reads and writes; tests inject their own.
type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

var commands = []*command{
	{name: "version", short: "print piwall's version", run: runVersion},
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
)

// run dispatches to a command and turns its outcome into an exit code. Only
// main calls os.Exit.
func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	std := stdio{in: in, out: out, errOut: errOut}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(std.errOut)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], std)
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			if err != nil {
				fmt.Fprintf(errOut, "piwall %s: %v\n", c.name, err)
				return exitError
			}
			return exitOK
		}
	}
	fmt.Fprintf(errOut, "piwall: unknown command %q\n", args[0])
	printUsage(errOut)
	return exitError
}

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("piwall locks Raspberry Pis down to an allowlist of network peers, over SSH.\n\nusage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  piwall %-30s %s\n", strings.TrimSpace(c.name+" "+c.usage), c.short)
	}
	io.WriteString(w, b.String())
}
