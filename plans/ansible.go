package plans

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// An Ansible inventory as a plan's host source:
//
//	ansible_inventory {
//	  path   = "hosts.ini"    # INI, or YAML (.yml, .yaml); relative to the plan
//	  groups = ["kiosk"]      # optional: only the hosts in these groups
//	}
//
// Each host of the inventory becomes a host of the plan, named as the
// inventory names it, reached at ansible_host (else its name) as
// ansible_user, on ansible_port, with ansible_ssh_private_key_file (and
// their older ansible_ssh_* names), the variables taken as Ansible takes
// them: the host's own, over its groups' (a child group's over its
// parent's, groups of one depth by name), over all's, group_vars/ and
// host_vars/ beside the inventory over the file's. Each group a host is
// in, directly or as a child's member, becomes a group of the plan: the
// plan's group block of that name gives its hosts allowlists. Problems are
// reported at their line in the inventory.

// ansibleInventory is an inventory file as Ansible reads it.
type ansibleInventory struct {
	file   string
	hosts  []*ansibleHost // in the order they first appear
	byName map[string]*ansibleHost
	groups map[string]*ansibleGroup
}

type ansibleHost struct {
	name Value[string] // where it first appears
	vars map[string]Value[string]
}

type ansibleGroup struct {
	name     Value[string] // its first mention
	hosts    map[string]bool
	children []string
	vars     map[string]Value[string]
}

func newAnsibleInventory(file string) *ansibleInventory {
	inv := &ansibleInventory{file: file, byName: map[string]*ansibleHost{}, groups: map[string]*ansibleGroup{}}
	inv.group(Value[string]{V: "all"})
	inv.group(Value[string]{V: "ungrouped"})
	return inv
}

// group returns the group named name.V, made at name.Range if new.
func (inv *ansibleInventory) group(name Value[string]) *ansibleGroup {
	g, ok := inv.groups[name.V]
	if !ok {
		g = &ansibleGroup{name: name, hosts: map[string]bool{}, vars: map[string]Value[string]{}}
		inv.groups[name.V] = g
	} else if g.name.Range.Filename == "" {
		g.name.Range = name.Range
	}
	return g
}

// host returns the host named name.V, made at name.Range if new.
func (inv *ansibleInventory) host(name Value[string]) *ansibleHost {
	if h, ok := inv.byName[name.V]; ok {
		return h
	}
	h := &ansibleHost{name: name, vars: map[string]Value[string]{}}
	inv.hosts = append(inv.hosts, h)
	inv.byName[name.V] = h
	return h
}

// addHost puts a host in group g, with vars.
func (inv *ansibleInventory) addHost(g *ansibleGroup, name Value[string], vars map[string]Value[string]) {
	h := inv.host(name)
	for k, v := range vars {
		h.vars[k] = v
	}
	g.hosts[name.V] = true
}

// memberships are the groups h is in, directly or through a child group,
// each with its depth below all (all: 0), deepest last, by name within a
// depth: the order in which Ansible lays their variables over each other.
func (inv *ansibleInventory) memberships(h string) []*ansibleGroup {
	parents := map[string][]string{}
	for _, g := range inv.groups {
		for _, c := range g.children {
			parents[c] = append(parents[c], g.name.V)
		}
	}
	depth := map[string]int{}
	var depthOf func(name string, seen map[string]bool) int
	depthOf = func(name string, seen map[string]bool) int {
		if d, ok := depth[name]; ok {
			return d
		}
		if name == "all" || seen[name] {
			return 0
		}
		seen[name] = true
		d := 1
		for _, p := range parents[name] {
			d = max(d, depthOf(p, seen)+1)
		}
		depth[name] = d
		return d
	}
	in := map[string]bool{"all": true}
	var climb func(name string)
	climb = func(name string) {
		if in[name] {
			return
		}
		in[name] = true
		for _, p := range parents[name] {
			climb(p)
		}
	}
	for _, g := range inv.groups {
		if g.hosts[h] {
			climb(g.name.V)
		}
	}
	var out []*ansibleGroup
	for name := range in {
		out = append(out, inv.groups[name])
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := depthOf(out[i].name.V, map[string]bool{}), depthOf(out[j].name.V, map[string]bool{})
		if di != dj {
			return di < dj
		}
		return out[i].name.V < out[j].name.V
	})
	return out
}

// hostVars are h's variables as Ansible sees them.
func (inv *ansibleInventory) hostVars(h *ansibleHost, groups []*ansibleGroup) map[string]Value[string] {
	vars := map[string]Value[string]{}
	for _, g := range groups {
		for k, v := range g.vars {
			vars[k] = v
		}
	}
	for k, v := range h.vars {
		vars[k] = v
	}
	return vars
}

// parseAnsibleInventory reads an inventory: YAML for .yml and .yaml
// files (and a file whose first line is "all:" or "---"), else INI.
func parseAnsibleInventory(file string, src []byte) (*ansibleInventory, hcl.Diagnostics) {
	if !utf8.Valid(src) {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid Ansible inventory",
			Detail: fmt.Sprintf("%s is not UTF-8 text.", file)}}
	}
	first, _, _ := strings.Cut(strings.TrimLeft(string(src), "\ufeff \t\r\n"), "\n")
	first = strings.TrimSpace(first)
	if strings.HasSuffix(file, ".yml") || strings.HasSuffix(file, ".yaml") || first == "---" || first == "all:" {
		return parseAnsibleYAML(file, src)
	}
	return parseAnsibleINI(file, src)
}

// srcPos is the position of byte off of src, line and column counted as
// HCL counts them (a column is a character).
type srcLines struct {
	file   string
	src    []byte
	starts []int // the byte each line starts at
}

func newSrcLines(file string, src []byte) *srcLines {
	s := &srcLines{file: file, src: src, starts: []int{0}}
	for i, c := range src {
		if c == '\n' {
			s.starts = append(s.starts, i+1)
		}
	}
	return s
}

func (s *srcLines) pos(off int) hcl.Pos {
	off = min(max(off, 0), len(s.src))
	line := sort.Search(len(s.starts), func(i int) bool { return s.starts[i] > off }) - 1
	return hcl.Pos{Line: line + 1, Column: utf8.RuneCount(s.src[s.starts[line]:off]) + 1, Byte: off}
}

func (s *srcLines) rng(from, to int) hcl.Range {
	return hcl.Range{Filename: s.file, Start: s.pos(from), End: s.pos(to)}
}

// The variables piwall reads, by the names Ansible gives them (the
// first of each list wins over the older names after it).
var ansibleVars = []struct {
	setting string
	names   []string
}{
	{"address", []string{"ansible_host", "ansible_ssh_host"}},
	{"user", []string{"ansible_user", "ansible_ssh_user"}},
	{"port", []string{"ansible_port", "ansible_ssh_port"}},
	{"identity_file", []string{"ansible_ssh_private_key_file", "ansible_private_key_file"}},
}

var ansibleSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "path", Required: true}, {Name: "groups"}}}

// decodeAnsibleInventory adds the hosts and groups of an inventory to the
// plan.
func (p *Plan) decodeAnsibleInventory(b *hcl.Block, ctx *hcl.EvalContext, df *dataFiles) hcl.Diagnostics {
	content, diags := bodyContent(b.Body, ansibleSchema)
	at, ok := content.Attributes["path"]
	if !ok {
		return diags
	}
	path, d := stringValue(at, ctx)
	diags = append(diags, d...)
	if path == nil {
		return diags
	}
	var only []Value[string]
	if at, ok := content.Attributes["groups"]; ok {
		only, d = stringList(at, ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			return diags
		}
	}
	name, src, err := df.read(path.V)
	if err != nil {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read Ansible inventory",
			Detail: fmt.Sprintf("%v. path is the inventory file (INI, or YAML ending .yml or .yaml), relative to the plan's directory.", err), Subject: path.Range.Ptr()})
	}
	// The hosts of an inventory with bad lines are still taken, without
	// those lines: one run reports every mistake.
	inv, d := parseAnsibleInventory(name, src)
	diags = append(diags, d...)
	if inv == nil {
		return diags
	}
	diags = append(diags, inv.readVarsDirs(df)...)
	for _, g := range only {
		if _, ok := inv.groups[g.V]; !ok {
			var known []string
			for n := range inv.groups {
				known = append(known, n)
			}
			sort.Strings(known)
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown Ansible group",
				Detail: fmt.Sprintf("%s has no group %q%s.", name, g.V, suggest(g.V, known)), Subject: g.Range.Ptr()})
		}
	}
	taken := 0
	for _, ah := range inv.hosts {
		groups := inv.memberships(ah.name.V)
		if len(only) > 0 && !slices.ContainsFunc(groups, func(g *ansibleGroup) bool {
			return slices.ContainsFunc(only, func(o Value[string]) bool { return o.V == g.name.V })
		}) {
			continue
		}
		taken++
		// A group's variable is every one of its hosts': a bad one is
		// reported once.
		diags = append(diags, p.ansibleHost(ah, groups, inv.hostVars(ah, groups))...)
	}
	diags = dedupe(diags)
	if taken == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "No hosts in Ansible inventory",
			Detail: fmt.Sprintf("%s gives the plan no host%s.", name, map[bool]string{true: " in the groups listed", false: ""}[len(only) > 0]), Subject: b.DefRange.Ptr()})
	}
	return diags
}

// ansibleHost adds one host of an inventory, in groups, with vars.
func (p *Plan) ansibleHost(ah *ansibleHost, groups []*ansibleGroup, vars map[string]Value[string]) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if d := checkName("host", ah.name.V, ah.name.Range); d != nil {
		return append(diags, d)
	}
	if prev := p.Host(ah.name.V); prev != nil {
		return append(diags, duplicate("host", ah.name.V, ah.name.Range, prev.DeclRange))
	}
	h := &Host{Name: ah.name.V, Address: ah.name, DeclRange: ah.name.Range, ansible: true}
	if c, ok := vars["ansible_connection"]; ok && c.V != "ssh" && c.V != "smart" && c.V != "paramiko" {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Not an SSH host",
			Detail:  fmt.Sprintf("ansible_connection=%s: piwall reaches hosts over SSH only; leave host %q out with the ansible_inventory block's groups.", c.V, ah.name.V),
			Subject: c.Range.Ptr()})
	}
	for _, av := range ansibleVars {
		var v Value[string]
		var name string
		found := false
		for _, name = range av.names {
			if v, found = vars[name]; found {
				break
			}
		}
		if !found {
			continue
		}
		switch av.setting {
		case "address":
			if bad := checkHostAddress(v, name); bad != nil {
				diags = append(diags, bad)
			} else {
				h.Address = v
			}
		case "user":
			h.Connection.User = &v
		case "identity_file":
			h.Connection.IdentityFile = &v
		case "port":
			n, err := strconv.Atoi(v.V)
			if err != nil || n < 1 || n > 65535 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid number",
					Detail: fmt.Sprintf("%s must be a whole number from 1 to 65535, not %q.", name, v.V), Subject: v.Range.Ptr()})
				continue
			}
			h.Connection.Port = &Value[int]{V: n, Range: v.Range}
		}
	}
	for _, g := range groups {
		if g.name.V == "all" || g.name.V == "ungrouped" {
			continue
		}
		if d := checkName("group", g.name.V, g.name.Range); d != nil {
			diags = append(diags, d)
			h.badRefs = true
			continue
		}
		if p.Group(g.name.V) == nil {
			// A group of the inventory that the plan gives no allowlists:
			// its hosts are in it all the same (for --limit).
			p.Groups = append(p.Groups, &Group{Name: g.name.V, DeclRange: g.name.Range})
		}
		h.Groups = append(h.Groups, Value[string]{V: g.name.V, Range: ah.name.Range})
		h.ansibleGroups = append(h.ansibleGroups, g.name.V)
	}
	p.Hosts = append(p.Hosts, h)
	return diags
}

// readVarsDirs reads the group_vars and host_vars directories beside the
// inventory, as Ansible does: group_vars/NAME (a YAML file, or a directory
// of them; NAME.yml, NAME.yaml and NAME.json too) for each group,
// host_vars/NAME for each host. Their variables are over those the
// inventory file gives the same group or host.
func (inv *ansibleInventory) readVarsDirs(df *dataFiles) hcl.Diagnostics {
	var diags hcl.Diagnostics
	read := func(kind, name string) map[string]Value[string] {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			return nil // no file of the directory
		}
		base := filepath.Join(filepath.Dir(inv.file), kind, name)
		var files []string
		if fi, err := os.Stat(base); err == nil && fi.IsDir() {
			entries, _ := os.ReadDir(base)
			for _, e := range entries {
				if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == "" || ext == ".yml" || ext == ".yaml" || ext == ".json") {
					files = append(files, filepath.Join(base, e.Name()))
				}
			}
		} else {
			for _, ext := range []string{"", ".yml", ".yaml", ".json"} {
				if fi, err := os.Stat(base + ext); err == nil && fi.Mode().IsRegular() {
					files = append(files, base+ext)
				}
			}
		}
		vars := map[string]Value[string]{}
		for _, f := range files {
			src, err := df.readName(f)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read Ansible variables",
					Detail: fmt.Sprintf("%v.", err)})
				continue
			}
			v, d := parseVarsFile(f, src)
			diags = append(diags, d...)
			for k, val := range v {
				vars[k] = val
			}
		}
		return vars
	}
	names := make([]string, 0, len(inv.groups))
	for n := range inv.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for k, v := range read("group_vars", n) {
			inv.groups[n].vars[k] = v
		}
	}
	for _, h := range inv.hosts {
		for k, v := range read("host_vars", h.name.V) {
			h.vars[k] = v
		}
	}
	return diags
}
