package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/piwall/piwall/modules"
)

// command is one piwall subcommand: its usage line, its help, and what it does.
type command struct {
	name  string
	usage string // the arguments after "piwall NAME"
	short string // one line for `piwall --help`
	long  string // the help of `piwall NAME -h`
	run   func(ctx context.Context, c *command, args []string, std stdio) error
}

// stdio is where a command reads and writes; tests inject their own.
type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

var commands = []*command{
	{name: "validate", usage: "[PATH] [--json] [--var NAME=VALUE] [--var-file FILE]", short: "check a plan offline: decode, check, lint",
		long: "Reads the plan at PATH (a .hcl file or a directory of them; default: the current directory),\nchecks it and lints it, and prints every problem with its place in the files. Exits 1 on errors.\nWith --json, the diagnostics are one JSON document on stdout, in the shape of terraform\nvalidate -json (severity, summary, detail, and the range in the file: line, column, byte).",
		run:  runValidate},
	{name: "fmt", usage: "[PATH] [--check]", short: "rewrite plan files in canonical formatting",
		long: "Rewrites the plan files at PATH in HCL's canonical layout and lists the files it changed.\nWith --check it changes nothing, lists the files that are not formatted, and exits 1 if any.",
		run:  runFmt},
	{name: "render", usage: "[PATH] --host NAME [--resolve=none|local] [--address NAME=ADDR,...] [--resolver ADDR]", short: "print the rulesets a host would get, offline",
		long: "Prints the IPv4 and then the IPv6 ruleset that host NAME would get, each a complete\niptables-restore document. Offline, DNS names are resolved only if asked: --resolve=local\nresolves them with this machine's resolver, --address pins a name to addresses. A plan with\ndns = \"system\" needs the host's resolvers: --resolver, or this machine's with --resolve=local.",
		run:  runRender},
	{name: "plan", usage: "[PATH] [--out FILE] [--detailed-exitcode] [--limit PATTERN] [--raw]", short: "show what would change on each host, read from the live hosts",
		long: "Connects to every host of the plan at PATH, reads its live rules and facts in one command,\nand shows what apply would change, in words (--raw: iptables lines). Changes nothing.",
		run:  runPlan},
	{name: "apply", usage: "[PATH|PLANFILE] [--yes] [--force] [--limit PATTERN]", short: "roll the plan out, safely",
		long: "Plans, asks for confirmation (on a terminal; without one, only with --yes), then per host:\ninstalls iptables if needed, applies the new rules atomically under a dead-man timer, and\nconfirms them over a new SSH connection before persisting them. A host that cannot be\nreached afterwards reverts by itself. A PLANFILE from plan --out applies only to hosts\nthat did not change since.",
		run:  runApply},
	{name: "rollback", usage: "HOST... [--to N | --open] [--plan PATH] [--yes]", short: "put hosts back to an earlier ruleset",
		long: "Puts each HOST back to the generation before its current one (--to N: generation N;\n--open: no rules, every policy ACCEPT), through the same protected steps as apply.\nHOST is a label of the plan (--plan, or the .hcl files here), or [user@]address[:port].",
		run:  runRollback},
	{name: "check", usage: "[PATH] [--limit PATTERN] [--json]", short: "prove each host's rules from the host: allowed peers reachable, the rest blocked",
		long: "From each host of the plan at PATH, over SSH, changing nothing: connects to every allowed\noutbound peer and port (a real NTP query for udp/123, a real DNS query to each allowed\nresolver, ping where allowed), probes every expect_blocked peer and requires it blocked,\nchecks loopback both ways, that the plan's names resolve on the host, and that the live\nrules are the persisted ones. The probes run at once on the host, each within 3s.\nExits 0 when every expectation holds, 1 otherwise.",
		run:  runCheck},
	{name: "status", usage: "[PATH] [--detailed] [--limit PATTERN] [--json]", short: "each host in one line: in sync, drift, not persisted or reverting",
		long: "Reads every host of the plan at PATH, changing nothing, and says per host whether its live\nrules are the plan's and the persisted ones (in sync, drift, not persisted) or a run's\nunconfirmed ones under a dead-man (reverting); its current generation and who applied it\nwhen; the dead-man, the lock, whether the boot loads the rules, and the packets dropped.\n--detailed adds each policy and rule with its packet and byte counters.\nExits 0 when every host is in sync, 1 otherwise.",
		run:  runStatus},
	{name: "logs", usage: "HOST [--since DURATION] [--follow | --suggest] [--plan PATH] [--json]", short: "the drops a host's log_drops logged, summarised",
		long: "Reads the kernel log of HOST (dmesg, which journald reads too) for the drops that log_drops\nlogged, and prints them by direction, protocol, peer (with its name where the plan's names,\nas the host resolves them, have its address) and port: how many, first and last seen.\n--follow then prints each new drop as it is logged, until interrupted. --suggest prints\nallowlist entries, as HCL, for what was dropped or, under mode = \"audit\", would have been.",
		run:  runLogs},
	{name: "history", usage: "HOST [--plan PATH]", short: "list a host's generations: time, operator, outcome",
		run: runHistory},
	{name: "inventory", usage: "[PATH] [--limit PATTERN] [--json]", short: "show each host as piwall will reach it, offline",
		long: "Lists each host of the plan at PATH as piwall will reach it, the way ssh -G shows a host:\nits groups and allowlists, then the connection the plan and ssh_config (~/.ssh/config, then\n/etc/ssh/ssh_config) make of it: host name, user, port, keys, ssh-agent, jump hosts (each\nresolved), proxy command, known_hosts files and host key alias. Connects to nothing.",
		run:  runInventory},
	{name: "completion", usage: "bash|zsh|fish", short: "print a shell completion script",
		long: "Prints the completion script of a shell: piwall completion bash > /etc/bash_completion.d/piwall"},
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
	out, errOut = termSafe{out}, termSafe{errOut}
	std := stdio{in: in, out: out, errOut: errOut}
	if len(args) == 0 {
		printUsage(std.errOut)
		return exitError
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(std.out) // asked for: it is the output
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, c, args[1:], std)
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			if errors.Is(err, errDiagnostics) {
				return exitError // the diagnostics said it all
			}
			if errors.Is(err, errChanges) {
				return exitChanges
			}
			if err != nil {
				fmt.Fprintf(errOut, "piwall %s: %v\n", c.name, err)
				for _, hint := range modules.Hints(err) {
					fmt.Fprintf(errOut, "hint: %s\n", hint)
				}
				return exitError
			}
			return exitOK
		}
	}
	fmt.Fprintf(errOut, "piwall: unknown command %q\n", args[0])
	printUsage(errOut)
	return exitError
}

// printUsage is `piwall --help`: what piwall is, its commands, the flags
// most of them share, and the exit codes.
func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("piwall locks Raspberry Pis down to an allowlist of network peers, over SSH,\nwithout ever locking its operator out.\n\n")
	b.WriteString("usage: piwall COMMAND [ARGUMENTS] [FLAGS]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.short)
	}
	b.WriteString(`
flags of plan, apply, rollback, history, check, status and logs (inventory: --limit and --json):
  --limit PATTERN   only these hosts: labels or groups, globs, ! to exclude
  --parallel N      hosts in flight at once
  --json            JSON on stdout instead of text
  --no-color        no colour (also: NO_COLOR)

exit codes: 0 success; 1 an error, or a host failed or reverted;
            2 plan --detailed-exitcode found changes

Run "piwall COMMAND -h" for a command's arguments and flags.
`)
	io.WriteString(w, b.String())
}
