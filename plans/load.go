package plans

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Options are the values given to a plan's variables from outside it.
type Options struct {
	Vars     []string // --var name=value, in order; a later one wins
	VarFiles []string // --var-file paths, in order
	Environ  []string // the environment, for PIWALL_VAR_name; nil means none
}

// Load reads the plan at path: one .hcl file, or every *.hcl file of a
// directory (not its subdirectories), like Terraform. It reports every
// problem it finds at once. The Plan is never nil: its Files hold the sources
// for printing the diagnostics; when they include errors, the rest of the
// Plan is incomplete and must not be used.
func Load(path string, opts Options) (*Plan, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	files, diags := readFiles(parser, path)
	p := &Plan{}
	df := &dataFiles{dir: path}
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		df.dir = filepath.Dir(path)
	}
	if !diags.HasErrors() {
		var more hcl.Diagnostics
		p, more = decode(files, opts, df)
		diags = append(diags, more...)
	}
	p.Files = parser.Files()
	for name, f := range df.files {
		if _, ok := p.Files[name]; !ok {
			p.Files[name] = f
		}
	}
	return p, diags
}

// PlanFiles lists the plan files at path: path itself if it is a file, else
// the *.hcl files directly in it, sorted.
func PlanFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	matches, err := filepath.Glob(filepath.Join(path, "*.hcl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	if len(matches) == 0 {
		return nil, fmt.Errorf("no .hcl files in %s", path)
	}
	return matches, nil
}

func readFiles(parser *hclparse.Parser, path string) ([]*hcl.File, hcl.Diagnostics) {
	names, err := PlanFiles(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read plan",
			Detail:   fmt.Sprintf("%v. A plan is a .hcl file or a directory of them.", err),
		}}
	}
	var files []*hcl.File
	var diags hcl.Diagnostics
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read plan file", Detail: err.Error()})
			continue
		}
		f, d := parser.ParseHCL(src, name)
		diags = append(diags, d...)
		if f != nil {
			files = append(files, f)
		}
	}
	return files, diags
}

// ParseExpression parses src (a --var value, say) as an HCL expression.
func parseExpression(src, filename string) (hcl.Expression, hcl.Diagnostics) {
	return hclsyntax.ParseExpression([]byte(src), filename, hcl.InitialPos)
}

// envVars picks PIWALL_VAR_name=value out of an environment.
func envVars(environ []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if name, found := strings.CutPrefix(k, "PIWALL_VAR_"); ok && found && name != "" {
			vars[name] = v
		}
	}
	return vars
}
