package main

// piwall inventory: each host of the plan as piwall will reach it, the
// way ssh -G and ansible-inventory --list show theirs. It connects to
// nothing. The text view lists, per host, one setting a line; the JSON
// view holds the same values, with paths in full.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/piwall/piwall/inventory"
)

func runInventory(_ context.Context, c *command, args []string, std stdio) error {
	fs := newFlagSet(c, std)
	var pf planFlags
	pf.register(fs)
	limit := fs.String("limit", "", "only the hosts that match `PATTERN`: labels or groups, globs, ! to exclude (pi-0*,!pi-03)")
	asJSON := fs.Bool("json", false, "print JSON on stdout instead of text (see README.md)")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path, err := planPath(positional)
	if err != nil {
		return err
	}
	p, err := loadPlan(path, &pf, std)
	if err != nil {
		return err
	}
	env, err := inventoryEnv()
	if err != nil {
		return err
	}
	all, err := inventory.Targets(p, env)
	if err != nil {
		return err
	}
	targets, err := inventory.Select(all, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONInventory(std.out, targets)
	}
	return writeInventory(std.out, targets, env.Home)
}

// jsonInventory is the document of inventory --json.
type jsonInventory struct {
	FormatVersion string                `json:"format_version"`
	Hosts         []jsonInventoryTarget `json:"hosts"`
}

// jsonInventoryTarget is a host, or one of its jump hosts, as piwall
// reaches it. ProxyJump is as ssh -G prints it (hops joined by commas,
// "" for none); proxy_jump_hops holds each hop resolved.
type jsonInventoryTarget struct {
	Host                  string                `json:"host"`
	Groups                []string              `json:"groups"`
	Allowlists            []string              `json:"allowlists"`
	HostName              string                `json:"hostname"`
	User                  string                `json:"user"`
	Port                  int                   `json:"port"`
	IdentityFiles         []string              `json:"identity_files"`
	CertificateFiles      []string              `json:"certificate_files"`
	UseAgent              bool                  `json:"use_agent"`
	IdentityAgent         string                `json:"identity_agent"`
	IdentitiesOnly        bool                  `json:"identities_only"`
	ProxyJump             string                `json:"proxy_jump"`
	ProxyJumpHops         []jsonInventoryTarget `json:"proxy_jump_hops"`
	ProxyCommand          string                `json:"proxy_command"`
	UserKnownHostsFiles   []string              `json:"user_known_hosts_files"`
	GlobalKnownHostsFiles []string              `json:"global_known_hosts_files"`
	HostKeyAlias          string                `json:"host_key_alias"`
	HashKnownHosts        bool                  `json:"hash_known_hosts"`
	StrictHostKeyChecking string                `json:"strict_host_key_checking"`
}

func writeJSONInventory(w io.Writer, targets []inventory.Target) error {
	doc := jsonInventory{FormatVersion: "1", Hosts: []jsonInventoryTarget{}}
	for _, t := range targets {
		doc.Hosts = append(doc.Hosts, jsonTarget(t))
	}
	return writeJSONValue(w, doc)
}

func jsonTarget(t inventory.Target) jsonInventoryTarget {
	j := jsonInventoryTarget{
		Host: t.Label, Groups: groupsOf(t), Allowlists: allowlistsOf(t),
		HostName: t.Address, User: t.User, Port: t.Port,
		IdentityFiles: nonNil(t.IdentityFiles), CertificateFiles: nonNil(t.CertificateFiles),
		UseAgent: t.UseAgent, IdentityAgent: t.IdentityAgent, IdentitiesOnly: t.IdentitiesOnly,
		ProxyJump: t.Jump, ProxyJumpHops: []jsonInventoryTarget{}, ProxyCommand: t.ProxyCommand,
		UserKnownHostsFiles: nonNil(t.KnownHosts), GlobalKnownHostsFiles: nonNil(t.GlobalKnownHosts),
		HostKeyAlias: t.HostKeyAlias, HashKnownHosts: t.HashKnownHosts, StrictHostKeyChecking: t.StrictHostKeyChecking,
	}
	for _, h := range t.Hops {
		j.ProxyJumpHops = append(j.ProxyJumpHops, jsonTarget(h))
	}
	return j
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func groupsOf(t inventory.Target) []string {
	out := []string{}
	if t.Host != nil {
		for _, g := range t.Host.Groups {
			out = append(out, g.V)
		}
	}
	return out
}

func allowlistsOf(t inventory.Target) []string {
	if t.Host == nil || t.Host.Policy == nil {
		return []string{}
	}
	return nonNil(t.Host.Policy.Allowlists)
}

// writeInventory is the text view: a block per host, a setting a line,
// paths under the home directory written with ~, a jump host's settings
// indented under it.
func writeInventory(w io.Writer, targets []inventory.Target, home string) error {
	if len(targets) == 0 {
		_, err := fmt.Fprintln(w, "The plan has no hosts.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, t := range targets {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "host %s\n", t.Label)
		fmt.Fprintf(tw, "  groups\t%s\n", listOrDash(groupsOf(t), ", "))
		fmt.Fprintf(tw, "  allowlists\t%s\n", listOrDash(allowlistsOf(t), ", "))
		writeConnection(tw, t, home, "  ")
	}
	return tw.Flush()
}

// writeConnection writes how t is reached, each line after indent.
func writeConnection(w io.Writer, t inventory.Target, home, indent string) {
	short := func(p string) string {
		if home != "" && (p == home || strings.HasPrefix(p, strings.TrimSuffix(home, "/")+"/")) {
			return "~" + p[len(strings.TrimSuffix(home, "/")):]
		}
		return p
	}
	paths := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = short(p)
		}
		return out
	}
	line := func(key, value string) { fmt.Fprintf(w, "%s%s\t%s\n", indent, key, value) }
	line("hostname", t.Address)
	line("user", t.User)
	line("port", strconv.Itoa(t.Port))
	line("identity files", listOrDash(paths(t.IdentityFiles), " "))
	if len(t.CertificateFiles) > 0 {
		line("certificates", strings.Join(paths(t.CertificateFiles), " "))
	}
	agent := "no"
	if t.UseAgent {
		agent = "$SSH_AUTH_SOCK"
		if t.IdentityAgent != "" && t.IdentityAgent != "SSH_AUTH_SOCK" {
			agent = short(t.IdentityAgent)
		}
		if t.IdentitiesOnly {
			agent += " (only the keys of the identity files)"
		}
	}
	line("ssh-agent", agent)
	line("proxy jump", dash(t.Jump))
	for i, h := range t.Hops {
		line(fmt.Sprintf("  hop %d", i+1), h.Label)
		writeConnection(w, h, home, indent+"    ")
	}
	line("proxy command", dash(t.ProxyCommand))
	line("known_hosts", listOrDash(paths(t.KnownHosts), " "))
	line("global known_hosts", listOrDash(paths(t.GlobalKnownHosts), " "))
	line("host key alias", dash(t.HostKeyAlias))
	hashed := "no"
	if t.HashKnownHosts {
		hashed = "yes"
	}
	line("hash known_hosts", hashed)
}

func listOrDash(s []string, sep string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, sep)
}
