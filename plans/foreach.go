package plans

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// A host block with for_each makes one host per element of a map, a set
// or list of strings, or a list of objects (the rows csvdecode,
// jsondecode or yamldecode make of a fleet's list), as Terraform's
// for_each does: each.key and each.value are the element's key and value
// in the block.
//
// Each host is named by the block's name attribute where it has one
// (name = each.value.hostname), else LABEL-KEY: host "kiosk" over the keys
// "01" and "02" makes kiosk-01 and kiosk-02. A list of objects has no keys
// of its own (each.key is the row's index), so it needs name: a host
// keeps its name when the rows are reordered.

func (p *Plan) decodeHostEach(b *hcl.Block, content *hcl.BodyContent, fe *hcl.Attribute, ctx *hcl.EvalContext, df *dataFiles) hcl.Diagnostics {
	label := b.Labels[0]
	v, diags := fe.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	if !v.IsWhollyKnown() {
		return hcl.Diagnostics{unknownValue(attrName(fe), fe.Expr.Range())}
	}
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid for_each", Detail: detail, Subject: fe.Expr.Range().Ptr()}}
	}
	if v.IsNull() {
		return bad("for_each is null: give it a map, a set or list of strings, or a list of objects (like csvdecode(file(\"kiosks.csv\"))).")
	}
	type instance struct {
		key   string
		value cty.Value
	}
	var insts []instance
	rows := false // a list of objects: keys are indexes
	ty := v.Type()
	switch {
	case ty.IsMapType() || ty.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			insts = append(insts, instance{k.AsString(), ev})
		}
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			switch et := ev.Type(); {
			case ev.IsNull():
				return bad(fmt.Sprintf("Element %d of for_each is null.", i))
			case et == cty.String:
				insts = append(insts, instance{ev.AsString(), ev})
			case et.IsObjectType() || et.IsMapType():
				rows = true
				insts = append(insts, instance{strconv.Itoa(i), ev})
			default:
				return bad(fmt.Sprintf("Element %d of for_each is a %s: a list for for_each holds strings (the keys) or objects (rows, like csvdecode's).", i, et.FriendlyName()))
			}
		}
	default:
		return bad(fmt.Sprintf("for_each is a %s: give it a map, a set or list of strings, or a list of objects (like csvdecode(file(\"kiosks.csv\"))).", ty.FriendlyName()))
	}
	nameAttr, named := content.Attributes["name"]
	if rows && !named {
		return bad(fmt.Sprintf("for_each over a list of objects needs name = each.value.COLUMN in the block, the column that names each host, so that a host keeps its name when the rows move (without name, host %q names its hosts %s-KEY, and a list has no keys).", label, label))
	}
	rowAt := csvRows(fe.Expr, ctx, df)
	// A problem of the block (a misspelt attribute) is reported once, not
	// once a host; one of a row's values (its address) once a row.
	seen := map[string]bool{}
	for i, in := range insts {
		ectx := ctx.NewChild()
		ectx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{
			"key": cty.StringVal(in.key), "value": in.value,
		})}
		name := Value[string]{V: label + "-" + in.key, Range: b.LabelRanges[0]}
		var d hcl.Diagnostics
		if named {
			var n *Value[string]
			n, d = stringValue(nameAttr, ectx)
			if n != nil {
				name = *n
			}
		}
		if !d.HasErrors() {
			d = append(d, p.decodeOneHost(name, b.DefRange, content, ectx)...)
		}
		for _, diag := range d {
			id := fmt.Sprintf("%s|%s|%v", diag.Summary, diag.Detail, diag.Subject)
			if seen[id] {
				continue
			}
			seen[id] = true
			c := *diag
			from := fmt.Sprintf("key %q", in.key)
			if rows && i < len(rowAt) {
				from = rowAt[i]
			}
			c.Detail = fmt.Sprintf("%s (host %q, made by for_each from %s.)", c.Detail, name.V, from)
			diags = append(diags, &c)
		}
	}
	return diags
}

// csvRows says where each row of for_each = csvdecode(file(PATH)) is in
// the CSV ("row 3, kiosks.csv:4"), so that a problem found in a host's
// values names the line to fix; nil for any other for_each.
func csvRows(expr hcl.Expression, ctx *hcl.EvalContext, df *dataFiles) []string {
	call, ok := expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "csvdecode" || len(call.Args) != 1 {
		return nil
	}
	inner, ok := call.Args[0].(*hclsyntax.FunctionCallExpr)
	if !ok || inner.Name != "file" || len(inner.Args) != 1 {
		return nil
	}
	path, d := inner.Args[0].Value(ctx)
	if d.HasErrors() || !path.IsKnown() || path.IsNull() || path.Type() != cty.String {
		return nil
	}
	name, src, err := df.read(path.AsString())
	if err != nil {
		return nil
	}
	r := csv.NewReader(bytes.NewReader(src))
	if _, err := r.Read(); err != nil { // the header
		return nil
	}
	var rows []string
	for {
		if _, err := r.Read(); err != nil {
			break
		}
		line, _ := r.FieldPos(0)
		rows = append(rows, fmt.Sprintf("row %d, %s:%d", len(rows)+1, name, line))
	}
	return rows
}
