package plans

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyyaml "github.com/zclconf/go-cty-yaml"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Values in a plan are HCL expressions evaluated with var.NAME (the
// variables), local.NAME (the locals) and a library of functions in scope.

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}},
}

type variable struct {
	name  string
	typ   cty.Type
	value cty.Value
	set   bool // has a value: a default or one given from outside
	bad   bool // was given a value that was rejected, and reported
	decl  hcl.Range
}

// evalVariables decodes the variable blocks and gives each its value, from
// (lowest precedence first) its default, PIWALL_VAR_name, --var-file files
// and --var flags.
func evalVariables(blocks []*hcl.Block, opts Options) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vars := map[string]*variable{}
	var order []string
	for _, b := range blocks {
		name := b.Labels[0]
		if prev, ok := vars[name]; ok {
			diags = append(diags, duplicate("variable", name, b.LabelRanges[0], prev.decl))
			continue
		}
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Invalid variable name",
				Detail:  fmt.Sprintf("%q cannot be used as var.%s: a variable name is letters, digits, underscores and dashes, starting with a letter.", name, name),
				Subject: b.LabelRanges[0].Ptr(),
			})
			continue
		}
		v := &variable{name: name, typ: cty.DynamicPseudoType, decl: b.DefRange}
		content, d := bodyContent(b.Body, variableSchema)
		diags = append(diags, d...)
		if attr, ok := content.Attributes["type"]; ok {
			t, d := typeexpr.TypeConstraint(attr.Expr)
			diags = append(diags, d...)
			if !d.HasErrors() {
				v.typ = t
			}
		}
		if attr, ok := content.Attributes["default"]; ok {
			val, d := attr.Expr.Value(nil)
			diags = append(diags, d...)
			v.bad = d.HasErrors()
			if !d.HasErrors() {
				v.assign(val, attr.Expr.Range(), &diags)
			}
		}
		if attr, ok := content.Attributes["description"]; ok {
			var s string
			diags = append(diags, decodeString(attr, nil, &s)...)
		}
		vars[name] = v
		order = append(order, name)
	}

	// Values from outside, lowest precedence first.
	envs := envVars(opts.Environ)
	envNames := make([]string, 0, len(envs))
	for n := range envs {
		envNames = append(envNames, n)
	}
	sort.Strings(envNames)
	for _, n := range envNames {
		// An environment variable for a variable the plan does not declare
		// is ignored: the environment is shared with other plans.
		if v, ok := vars[n]; ok {
			setRaw(v, envs[n], "PIWALL_VAR_"+n, &diags)
		}
	}
	for _, path := range opts.VarFiles {
		diags = append(diags, readVarFile(path, vars)...)
	}
	for _, kv := range opts.Vars {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid --var",
				Detail: fmt.Sprintf("--var %q: write --var NAME=VALUE.", kv)})
			continue
		}
		v, ok := vars[name]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable",
				Detail: fmt.Sprintf("--var %s: the plan declares no variable %q%s.", kv, name, suggest(name, order))})
			continue
		}
		setRaw(v, raw, "--var "+name, &diags)
	}

	values := map[string]cty.Value{}
	for _, name := range order {
		v := vars[name]
		if !v.set {
			if !v.bad {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: "No value for required variable",
					Detail:  fmt.Sprintf("Variable %q has no default: give it one, or a value with --var %s=..., --var-file, or PIWALL_VAR_%s.", name, name, name),
					Subject: v.decl.Ptr(),
				})
			}
			// An unknown value stands in for the missing one, so that the
			// references to it report nothing more (see consequence).
			values[name] = cty.DynamicVal
			continue
		}
		values[name] = v.value
	}
	return values, diags
}

// setRaw gives v a value written outside the plan: taken as it is for a
// string variable, else parsed as an HCL expression (["a", "b"], 42, true).
// Such a value has no place in the plan's files to point at, so a problem
// with it is a diagnostic without a subject that names its source.
func setRaw(v *variable, raw, source string, diags *hcl.Diagnostics) {
	if v.typ == cty.String || v.typ == cty.DynamicPseudoType {
		v.value, v.set = cty.StringVal(raw), true
		return
	}
	if expr, d := parseExpression(raw, source); !d.HasErrors() {
		if val, d := expr.Value(nil); !d.HasErrors() {
			if out, err := convert.Convert(val, v.typ); err == nil {
				v.value, v.set = out, true
				return
			}
		}
	}
	v.bad = true
	*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
		Detail: fmt.Sprintf("%s: %q is not a value of type %s: write %s.", source, raw, typeexpr.TypeString(v.typ), typeHint(v.typ))})
}

// assign gives v the value val, written in a file at rng, converted to v's
// type. A value that does not convert is reported and leaves v as it was.
func (v *variable) assign(val cty.Value, rng hcl.Range, diags *hcl.Diagnostics) {
	out, err := convert.Convert(val, v.typ)
	if err != nil {
		v.bad = true
		*diags = append(*diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail:  fmt.Sprintf("Variable %q is of type %s (%s): write %s.", v.name, typeexpr.TypeString(v.typ), err, typeHint(v.typ)),
			Subject: rng.Ptr(),
		})
		return
	}
	v.value, v.set = out, true
}

// typeHint says how to write a value of type t.
func typeHint(t cty.Type) string {
	switch {
	case t == cty.Number:
		return "a number, like 22"
	case t == cty.Bool:
		return "true or false"
	case t.IsListType() || t.IsSetType() || t.IsTupleType():
		return `a list in HCL syntax with its strings in quotes, like ["192.0.2.0/24", "198.51.100.7"]`
	case t.IsMapType() || t.IsObjectType():
		return `an object in HCL syntax, like { name = "value" }`
	}
	return "a value in HCL syntax, with strings in quotes"
}

// readVarFile sets variables from an HCL file of name = value lines.
func readVarFile(path string, vars map[string]*variable) hcl.Diagnostics {
	src, err := os.ReadFile(path)
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read --var-file", Detail: err.Error()}}
	}
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return diags
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		attr := attrs[n]
		v, ok := vars[n]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable",
				Detail:  fmt.Sprintf("The plan declares no variable %q.", n),
				Subject: attr.NameRange.Ptr()})
			continue
		}
		val, d := attr.Expr.Value(nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			v.bad = true
			continue
		}
		v.assign(val, attr.Expr.Range(), &diags)
	}
	return diags
}

// evalLocals evaluates every attribute of the locals blocks. A local may use
// variables and other locals, in any order, but not itself through a cycle.
func evalLocals(blocks []*hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	pending := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		names := make([]string, 0, len(attrs))
		for name := range attrs {
			names = append(names, name)
		}
		// In the order written, so that the diagnostics are the same every run.
		sort.Slice(names, func(i, j int) bool {
			return attrs[names[i]].NameRange.Start.Byte < attrs[names[j]].NameRange.Start.Byte
		})
		for _, name := range names {
			a := attrs[name]
			if prev, ok := pending[name]; ok {
				diags = append(diags, duplicate("local", name, a.NameRange, prev.NameRange))
				continue
			}
			pending[name] = a
		}
	}
	locals := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			a := pending[name]
			if !localsReady(a.Expr, locals, pending) {
				continue
			}
			ctx.Variables["local"] = cty.ObjectVal(locals)
			v, d := a.Expr.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				v = cty.DynamicVal
			}
			locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			// Some locals use each other in a circle. Only those on it are at
			// fault: each is reported, at its reference to the next, and
			// becomes unknown, so that the locals using them are evaluated and
			// report nothing more (see consequence).
			deps := map[string][]hcl.Traversal{}
			for _, name := range names {
				for _, t := range pending[name].Expr.Variables() {
					if ref, ok := localRef(t); ok && pending[ref] != nil {
						deps[name] = append(deps[name], t)
					}
				}
			}
			var cycle []string
			for _, name := range names {
				path := cyclePath(name, deps)
				if path == nil {
					continue
				}
				cycle = append(cycle, name)
				subject := pending[name].Expr.Range()
				for _, t := range deps[name] {
					if ref, _ := localRef(t); ref == path[1] {
						subject = t.SourceRange()
						break
					}
				}
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: "Cycle in locals",
					Detail: fmt.Sprintf("local.%s uses itself: local.%s. Compute one of these locals without the others.",
						name, strings.Join(path, " -> local.")),
					Subject: subject.Ptr(),
				})
			}
			if len(cycle) == 0 {
				break // cannot happen: every local left waits for another
			}
			for _, name := range cycle {
				locals[name] = cty.DynamicVal
				delete(pending, name)
			}
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return diags
}

// localRef returns the name of the local t refers to, if any.
func localRef(t hcl.Traversal) (string, bool) {
	if t.RootName() != "local" || len(t) < 2 {
		return "", false
	}
	attr, ok := t[1].(hcl.TraverseAttr)
	return attr.Name, ok
}

// cyclePath returns a path of references from local start back to it, as
// the names along the way, start first and last; nil if there is none.
func cyclePath(start string, deps map[string][]hcl.Traversal) []string {
	seen := map[string]bool{}
	var walk func(name string, path []string) []string
	walk = func(name string, path []string) []string {
		for _, t := range deps[name] {
			next, _ := localRef(t)
			if next == start {
				return append(slices.Clone(path), next)
			}
			if !seen[next] {
				seen[next] = true
				if p := walk(next, append(slices.Clone(path), next)); p != nil {
					return p
				}
			}
		}
		return nil
	}
	return walk(start, []string{start})
}

// localsReady reports whether every local expr refers to is evaluated, or
// is no local at all (HCL then reports the unknown name).
func localsReady(expr hcl.Expression, done map[string]cty.Value, pending map[string]*hcl.Attribute) bool {
	for _, t := range expr.Variables() {
		if t.RootName() != "local" || len(t) < 2 {
			continue
		}
		attr, ok := t[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		if _, evaluated := done[attr.Name]; !evaluated {
			if _, known := pending[attr.Name]; known {
				return false
			}
		}
	}
	return true
}

// functions are HCL's usual library, as in Terraform, plus the cidr*
// functions for address arithmetic, and file, csvdecode, jsondecode and
// yamldecode for fleets kept as data (file reads through df).
func functions(df *dataFiles) map[string]function.Function {
	return map[string]function.Function{
		"file": df.fileFunc(), "csvdecode": stdlib.CSVDecodeFunc,
		"yamldecode": ctyyaml.YAMLDecodeFunc, "yamlencode": ctyyaml.YAMLEncodeFunc,
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "chomp": stdlib.ChompFunc,
		"chunklist": stdlib.ChunklistFunc, "coalesce": stdlib.CoalesceFunc, "coalescelist": stdlib.CoalesceListFunc,
		"compact": stdlib.CompactFunc, "concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc,
		"distinct": stdlib.DistinctFunc, "element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc,
		"floor": stdlib.FloorFunc, "format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc,
		"indent": stdlib.IndentFunc, "join": stdlib.JoinFunc, "jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc, "keys": stdlib.KeysFunc, "length": stdlib.LengthFunc,
		"lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc, "max": stdlib.MaxFunc, "merge": stdlib.MergeFunc,
		"min": stdlib.MinFunc, "parseint": stdlib.ParseIntFunc, "range": stdlib.RangeFunc, "regex": stdlib.RegexFunc,
		"regexall": stdlib.RegexAllFunc, "replace": stdlib.ReplaceFunc, "reverse": stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc, "setproduct": stdlib.SetProductFunc,
		"setsubtract": stdlib.SetSubtractFunc, "setunion": stdlib.SetUnionFunc, "slice": stdlib.SliceFunc,
		"sort": stdlib.SortFunc, "split": stdlib.SplitFunc, "strrev": stdlib.ReverseFunc, "substr": stdlib.SubstrFunc,
		"title": stdlib.TitleFunc, "tolist": convertFunc(cty.List(cty.DynamicPseudoType)), "toset": convertFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring": convertFunc(cty.String), "tonumber": convertFunc(cty.Number), "tobool": convertFunc(cty.Bool),
		"trim": stdlib.TrimFunc, "trimprefix": stdlib.TrimPrefixFunc, "trimspace": stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc, "upper": stdlib.UpperFunc, "values": stdlib.ValuesFunc,
		"zipmap":   stdlib.ZipmapFunc,
		"cidrhost": cidrHostFunc, "cidrnetmask": cidrNetmaskFunc, "cidrsubnet": cidrSubnetFunc, "cidrsubnets": cidrSubnetsFunc,
	}
}

func convertFunc(to cty.Type) function.Function {
	return stdlib.MakeToFunc(to)
}

func duplicate(kind, name string, here, first hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s %q", kind, name),
		Detail:   fmt.Sprintf("%s %q is already defined at %s. Each name is defined once: rename one, or merge them.", kind, name, first),
		Subject:  here.Ptr(),
	}
}
