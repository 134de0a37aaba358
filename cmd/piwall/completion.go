package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/piwall/piwall/modules"
)

// The completion command reads the command table, so it joins the table
// in init: set there directly, the table would refer to itself.
func init() {
	for _, c := range commands {
		if c.name == "completion" {
			c.run = runCompletion
		}
	}
}

// runCompletion prints a completion script for a shell: the commands, and
// for each the flags it takes; paths complete as files.
func runCompletion(_ context.Context, c *command, args []string, std stdio) error {
	if len(args) != 1 {
		return modules.WithHint(errors.New("which shell? bash, zsh or fish"), "piwall completion bash > /etc/bash_completion.d/piwall")
	}
	flags := commandFlags()
	var names []string
	for _, cmd := range commands {
		names = append(names, cmd.name)
	}
	switch args[0] {
	case "bash":
		var cases strings.Builder
		for _, n := range names {
			fmt.Fprintf(&cases, "    %s) opts=%q ;;\n", n, strings.Join(flags[n], " "))
		}
		fmt.Fprintf(std.out, `# bash completion for piwall
_piwall() {
  local cur=${COMP_WORDS[COMP_CWORD]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case "${COMP_WORDS[1]}" in
%s  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _piwall piwall
`, strings.Join(names, " "), cases.String())
	case "zsh":
		var cases strings.Builder
		for _, n := range names {
			fmt.Fprintf(&cases, "    %s) _arguments '*:file:_files' %s ;;\n", n, zshFlags(flags[n]))
		}
		fmt.Fprintf(std.out, `#compdef piwall
_piwall() {
  if (( CURRENT == 2 )); then
    _values 'command' %s
    return
  fi
  case $words[2] in
%s  esac
}
compdef _piwall piwall
`, strings.Join(names, " "), cases.String())
	case "fish":
		fmt.Fprintf(std.out, "# fish completion for piwall\ncomplete -c piwall -f -n __fish_use_subcommand -a '%s'\n", strings.Join(names, " "))
		for _, n := range names {
			for _, f := range flags[n] {
				fmt.Fprintf(std.out, "complete -c piwall -n '__fish_seen_subcommand_from %s' -l %s\n", n, strings.TrimPrefix(f, "--"))
			}
		}
	default:
		return fmt.Errorf("no completion for %q: bash, zsh or fish", args[0])
	}
	return nil
}

func zshFlags(flags []string) string {
	var out []string
	for _, f := range flags {
		out = append(out, "'"+f+"[]'")
	}
	return strings.Join(out, " ")
}

// commandFlags lists each command's flags, read from its own flag set by
// running it with -h into nowhere.
func commandFlags() map[string][]string {
	out := map[string][]string{}
	for _, c := range commands {
		if c.name == "completion" {
			continue
		}
		var fs *flag.FlagSet
		newFlagSetHook = func(f *flag.FlagSet) { fs = f }
		c.run(context.Background(), c, []string{"-h"}, stdio{out: io.Discard, errOut: io.Discard})
		newFlagSetHook = nil
		if fs == nil {
			continue
		}
		fs.VisitAll(func(f *flag.Flag) { out[c.name] = append(out[c.name], "--"+f.Name) })
		sort.Strings(out[c.name])
	}
	return out
}
