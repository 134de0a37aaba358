package plans

import (
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// yamlErrLine finds the line a YAML parser's error names.
var yamlErrLine = regexp.MustCompile(`line (\d+):`)

// yamlFile is a YAML file of an inventory, read with the place of each
// node, so that its problems are reported at their lines.
type yamlFile struct {
	sl    *srcLines
	diags hcl.Diagnostics
}

// parseYAML parses src; a file that is not YAML is an error at the line
// the parser names.
func parseYAML(file string, src []byte) (*yamlFile, *yaml.Node, hcl.Diagnostics) {
	y := &yamlFile{sl: newSrcLines(file, src)}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid Ansible inventory",
			Detail: fmt.Sprintf("%s is not YAML: %v.", file, err)}
		if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= len(y.sl.starts) {
				start := y.sl.starts[n-1]
				end := indexByteFrom(src, start, '\n')
				if end < 0 {
					end = len(src)
				}
				r := y.sl.rng(start, end)
				d.Subject = &r
			}
		}
		return nil, nil, hcl.Diagnostics{d}
	}
	if len(doc.Content) == 0 {
		return y, nil, nil
	}
	return y, doc.Content[0], nil
}

// rangeOf is a node's place: yaml.v3 gives its line and column (in
// characters); the byte offset is found from them.
func (y *yamlFile) rangeOf(n *yaml.Node) hcl.Range {
	src := y.sl.src
	line := min(max(n.Line, 1), len(y.sl.starts)) - 1
	off := y.sl.starts[line]
	for col := 1; col < n.Column && off < len(src) && src[off] != '\n'; col++ {
		_, size := utf8.DecodeRune(src[off:])
		off += size
	}
	end := off
	if n.Kind == yaml.ScalarNode {
		end = off + len(n.Value)
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			end += 2
		}
		if nl := indexByteFrom(src, off, '\n'); nl >= 0 && end > nl {
			end = nl
		}
		end = min(end, len(src))
	}
	return hcl.Range{Filename: y.sl.file, Start: y.sl.pos(off), End: y.sl.pos(end)}
}

func (y *yamlFile) bad(n *yaml.Node, summary, detail string) {
	r := y.rangeOf(n)
	y.diags = append(y.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &r})
}

// mapping returns n's pairs, or reports that n is no mapping. An empty
// value (null) has none.
func (y *yamlFile) mapping(n *yaml.Node, what string) [][2]*yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		y.bad(n, "Invalid Ansible inventory", fmt.Sprintf("%s is a mapping (NAME: VALUE lines), not this.", what))
		return nil
	}
	var pairs [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return pairs
}

// scalarVars are the variables of a mapping whose values are scalars;
// lists and mappings hold no variable piwall reads.
func (y *yamlFile) scalarVars(n *yaml.Node, what string) map[string]Value[string] {
	vars := map[string]Value[string]{}
	for _, kv := range y.mapping(n, what) {
		v := kv[1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode {
			continue
		}
		vars[kv[0].Value] = Value[string]{V: v.Value, Range: y.rangeOf(v)}
	}
	return vars
}

// parseAnsibleYAML reads an inventory in Ansible's YAML format: a mapping
// of groups (usually all), each a mapping of hosts (NAME: its variables,
// or nothing), vars and children (more groups, nested the same way).
func parseAnsibleYAML(file string, src []byte) (*ansibleInventory, hcl.Diagnostics) {
	inv := newAnsibleInventory(file)
	y, root, diags := parseYAML(file, src)
	if y == nil {
		return nil, diags
	}
	depth := 0
	var readGroup func(name *yaml.Node, body *yaml.Node)
	readGroup = func(name *yaml.Node, body *yaml.Node) {
		depth++
		defer func() { depth-- }()
		if depth > 64 {
			y.bad(name, "Invalid Ansible inventory", "The groups nest more than 64 deep.")
			return
		}
		g := inv.group(Value[string]{V: name.Value, Range: y.rangeOf(name)})
		for _, kv := range y.mapping(body, fmt.Sprintf("Group %q", name.Value)) {
			switch kv[0].Value {
			case "hosts":
				for _, hv := range y.mapping(kv[1], fmt.Sprintf("The hosts of group %q", name.Value)) {
					names, err := expandHostPattern(hv[0].Value)
					if err != nil {
						y.bad(hv[0], "Invalid host range", fmt.Sprintf("%q: %v.", hv[0].Value, err))
						continue
					}
					vars := y.scalarVars(hv[1], fmt.Sprintf("The variables of host %q", hv[0].Value))
					for _, n := range names {
						inv.addHost(g, Value[string]{V: n, Range: y.rangeOf(hv[0])}, vars)
					}
				}
			case "vars":
				for k, v := range y.scalarVars(kv[1], fmt.Sprintf("The vars of group %q", name.Value)) {
					g.vars[k] = v
				}
			case "children":
				for _, cv := range y.mapping(kv[1], fmt.Sprintf("The children of group %q", name.Value)) {
					if cv[0].Value == "all" || cv[0].Value == name.Value {
						y.bad(cv[0], "Invalid child group", fmt.Sprintf("Group %q cannot be a child of %q.", cv[0].Value, name.Value))
						continue
					}
					g.children = appendNew(g.children, cv[0].Value)
					readGroup(cv[0], cv[1])
				}
			default:
				y.bad(kv[0], "Invalid Ansible inventory", fmt.Sprintf("%q in group %q: a group holds hosts, vars and children.", kv[0].Value, name.Value))
			}
		}
	}
	if root == nil {
		return inv, y.diags
	}
	for _, kv := range y.mapping(root, "An inventory") {
		if kv[0].Kind != yaml.ScalarNode || kv[0].Value == "" {
			y.bad(kv[0], "Invalid Ansible inventory", "A group's name is a word.")
			continue
		}
		readGroup(kv[0], kv[1])
	}
	return inv, y.diags
}

// parseVarsFile reads a group_vars or host_vars file: a YAML mapping of
// variables.
func parseVarsFile(file string, src []byte) (map[string]Value[string], hcl.Diagnostics) {
	y, root, diags := parseYAML(file, src)
	if y == nil || root == nil {
		return nil, diags
	}
	vars := y.scalarVars(root, "A variables file")
	return vars, y.diags
}

func indexByteFrom(b []byte, from int, c byte) int {
	for i := from; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}
