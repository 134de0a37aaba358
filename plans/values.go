package plans

import (
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Each decoder evaluates one attribute and checks its value; a problem is a
// diagnostic whose subject is the exact value at fault (the element of a
// list, not the whole list).

func evalAs(expr hcl.Expression, ctx *hcl.EvalContext, want cty.Type, what string) (cty.Value, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Missing value",
			Detail: fmt.Sprintf("%s cannot be null: give it a value, or leave it out.", what), Subject: expr.Range().Ptr()}}
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, hcl.Diagnostics{unknownValue(what, expr.Range())}
	}
	out, err := convert.Convert(v, want)
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail: fmt.Sprintf("%s must be %s: %s.", what, friendlyType(want), err), Subject: expr.Range().Ptr()}}
	}
	return out, nil
}

// consequence is the Extra of a diagnostic about an unknown value. A value
// is unknown only when something it is computed from failed (a variable
// without a value, a local whose expression has an error), and that failure
// is reported where it happened. The diagnostic still stops decoding the
// value, but decode drops it, so that one mistake is reported once.
type consequence struct{}

func unknownValue(what string, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown value",
		Detail:  fmt.Sprintf("%s must be known when the plan is read.", what),
		Subject: rng.Ptr(), Extra: consequence{}}
}

// dropConsequences removes the diagnostics about unknown values, unless
// they are the only errors.
func dropConsequences(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if _, ok := d.Extra.(consequence); !ok {
			out = append(out, d)
		}
	}
	if diags.HasErrors() && !out.HasErrors() {
		return diags
	}
	return out
}

func friendlyType(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Bool:
		return "true or false"
	case t == cty.Number:
		return "a number"
	case t.IsListType():
		return "a list of " + strings.TrimPrefix(friendlyType(t.ElementType()), "a ") + "s"
	}
	return t.FriendlyName()
}

func decodeString(attr *hcl.Attribute, ctx *hcl.EvalContext, out *string) hcl.Diagnostics {
	v, diags := evalAs(attr.Expr, ctx, cty.String, attrName(attr))
	if !diags.HasErrors() {
		*out = v.AsString()
	}
	return diags
}

func stringValue(attr *hcl.Attribute, ctx *hcl.EvalContext) (*Value[string], hcl.Diagnostics) {
	var s string
	diags := decodeString(attr, ctx, &s)
	if diags.HasErrors() {
		return nil, diags
	}
	return &Value[string]{V: s, Range: attr.Expr.Range()}, nil
}

func boolValue(attr *hcl.Attribute, ctx *hcl.EvalContext) (*Value[bool], hcl.Diagnostics) {
	v, diags := evalAs(attr.Expr, ctx, cty.Bool, attrName(attr))
	if diags.HasErrors() {
		return nil, diags
	}
	return &Value[bool]{V: v.True(), Range: attr.Expr.Range()}, nil
}

// intValue decodes a whole number between lo and hi.
func intValue(attr *hcl.Attribute, ctx *hcl.EvalContext, lo, hi int) (*Value[int], hcl.Diagnostics) {
	v, diags := evalAs(attr.Expr, ctx, cty.Number, attrName(attr))
	if diags.HasErrors() {
		return nil, diags
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if acc != big.Exact || i < int64(lo) || i > int64(hi) {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid number",
			Detail:  fmt.Sprintf("%s must be a whole number from %d to %d, not %s.", attrName(attr), lo, hi, bf.Text('g', -1)),
			Subject: attr.Expr.Range().Ptr()}}
	}
	return &Value[int]{V: int(i), Range: attr.Expr.Range()}, nil
}

func durationValue(attr *hcl.Attribute, ctx *hcl.EvalContext) (*Value[time.Duration], hcl.Diagnostics) {
	s, diags := stringValue(attr, ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	d, err := time.ParseDuration(s.V)
	if err != nil || d < time.Second || d > 24*time.Hour {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid duration",
			Detail:  fmt.Sprintf("%s must be a duration from 1s to 24h, like \"60s\" or \"2m\", not %q.", attrName(attr), s.V),
			Subject: attr.Expr.Range().Ptr()}}
	}
	return &Value[time.Duration]{V: d, Range: s.Range}, nil
}

// stringList decodes a list of strings, keeping each element's own range
// when the list is written out as [a, b, c].
func stringList(attr *hcl.Attribute, ctx *hcl.EvalContext) ([]Value[string], hcl.Diagnostics) {
	if tuple, ok := attr.Expr.(*hclsyntax.TupleConsExpr); ok {
		var out []Value[string]
		var diags hcl.Diagnostics
		for _, e := range tuple.Exprs {
			v, d := e.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			// An element may itself be a list (var.admin_nets): flatten it.
			if v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType() {
				inner, d := listElems(v, e.Range(), attr.Name)
				diags = append(diags, d...)
				out = append(out, inner...)
				continue
			}
			inner, d := listElems(cty.TupleVal([]cty.Value{v}), e.Range(), attr.Name)
			diags = append(diags, d...)
			out = append(out, inner...)
		}
		return out, diags
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	return listElems(v, attr.Expr.Range(), attr.Name)
}

// listExamples are what each list argument holds, for the diagnostics.
var listExamples = map[string]string{
	"from": `["192.0.2.0/24", "admin.example.com"]`, "to": `["192.0.2.10", "api.example.com"]`,
	"ports": `["tcp/443", "udp/123"]`, "dns": `["192.0.2.53"]`, "keep_chains": `["DOCKER*", "f2b-*"]`, "coexist": `["docker", "fail2ban"]`,
	"groups": `["kiosks"]`, "allowlists": `["kiosk"]`,
}

func listElems(v cty.Value, rng hcl.Range, name string) ([]Value[string], hcl.Diagnostics) {
	what := "The " + strconv.Quote(name) + " argument"
	example, ok := listExamples[name]
	if !ok {
		example = `["a", "b"]`
	}
	if !v.IsWhollyKnown() {
		return nil, hcl.Diagnostics{unknownValue(what, rng)}
	}
	if v.IsNull() {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Missing value",
			Detail: fmt.Sprintf("%s cannot be null: write a list of strings, or leave it out.", what), Subject: rng.Ptr()}}
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail: fmt.Sprintf("%s must be a list of strings, like %s.", what, example), Subject: rng.Ptr()}}
	}
	var out []Value[string]
	var diags hcl.Diagnostics
	for _, e := range lv.AsValueSlice() {
		if e.IsNull() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing value",
				Detail: fmt.Sprintf("%s cannot hold null: remove it, or write a string.", what), Subject: rng.Ptr()})
			continue
		}
		out = append(out, Value[string]{V: e.AsString(), Range: rng})
	}
	return out, diags
}

func attrName(attr *hcl.Attribute) string { return "The " + strconv.Quote(attr.Name) + " argument" }

// hostnameRE is a DNS name: dot-separated labels of letters, digits and
// dashes, not starting or ending with a dash, and not all digits at the end
// (that would be a malformed address).
var hostnameRE = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

// parseEndpoint reads a peer: an address, a network or a DNS name.
func parseEndpoint(v Value[string]) (Endpoint, *hcl.Diagnostic) {
	s := strings.TrimSpace(v.V)
	bad := func(summary, detail string) (Endpoint, *hcl.Diagnostic) {
		return Endpoint{}, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: v.Range.Ptr()}
	}
	if s == "" {
		return bad("Empty endpoint", "Write an address (192.0.2.10), a network (192.0.2.0/24) or a DNS name (api.example.com).")
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Hostname() != "" {
		return bad("Invalid endpoint", fmt.Sprintf("%q is a URL: write the host alone, %q, and its port in ports, like \"tcp/443\".", s, u.Hostname()))
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			addr, bits, _ := strings.Cut(s, "/")
			if a, aerr := netip.ParseAddr(addr); aerr == nil {
				if a.Zone() != "" {
					return bad("Invalid CIDR", fmt.Sprintf("%q has a zone: a network is written without %%zone, like %s/%s.", s, a.WithZone(""), bits))
				}
				family := "IPv4"
				if a.Is6() {
					family = "IPv6"
				}
				return bad("Invalid CIDR", fmt.Sprintf("%q: /%s is not a prefix length for an %s network: write /0 to /%d, like %s/%d for the address alone.", s, bits, family, a.BitLen(), a, a.BitLen()))
			}
			if hostnameRE.MatchString(addr) && !looksNumeric(addr) {
				return bad("Invalid CIDR", fmt.Sprintf("%q: a DNS name has no prefix length. Write %q for the name, or a network like 192.0.2.0/24.", s, addr))
			}
			return bad("Invalid CIDR", fmt.Sprintf("%q is not a network: write an address and a prefix length, like 192.0.2.0/24 or 2001:db8::/32.", s))
		}
		if p.Masked() != p {
			return bad("Invalid CIDR", fmt.Sprintf("%q has host bits set: the network is %s (or write the single address %s).", s, p.Masked(), p.Addr()))
		}
		if p.Addr().Is4In6() {
			return bad("Invalid CIDR", fmt.Sprintf("%q is an IPv4-mapped IPv6 network: write it as IPv4.", s))
		}
		return Endpoint{Prefix: p, Range: v.Range}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return bad("Invalid address", fmt.Sprintf("%q has a zone: an allowlist takes addresses without %%zone; write %q.", s, a.WithZone("").String()))
		}
		if a.Is4In6() {
			a = a.Unmap()
		}
		return Endpoint{Prefix: netip.PrefixFrom(a, a.BitLen()), Range: v.Range}, nil
	}
	if looksNumeric(s) || strings.Contains(s, ":") {
		return bad("Invalid address", fmt.Sprintf("%q is neither a valid IPv4 or IPv6 address nor a DNS name: write an address like 192.0.2.10 (four numbers from 0 to 255) or 2001:db8::10, a network like 192.0.2.0/24, or a name like api.example.com.", s))
	}
	if len(s) > 253 || !hostnameRE.MatchString(s) {
		return bad("Invalid DNS name", fmt.Sprintf("%q is not a DNS name: labels of letters, digits and dashes, joined by dots. For an address or network, write 192.0.2.10 or 192.0.2.0/24.", s))
	}
	return Endpoint{Name: strings.ToLower(strings.TrimSuffix(s, ".")), Range: v.Range}, nil
}

// looksNumeric is true for digits and dots only: an attempt at an IPv4
// address, never a DNS name.
func looksNumeric(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

var protocols = map[string]bool{"tcp": true, "udp": true, "icmp": true}

// parsePort reads tcp/443, udp/53, tcp/8000-8100 or icmp.
func parsePort(v Value[string]) (Port, *hcl.Diagnostic) {
	s := strings.ToLower(strings.TrimSpace(v.V))
	bad := func(summary, detail string) (Port, *hcl.Diagnostic) {
		return Port{}, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: v.Range.Ptr()}
	}
	proto, ports, hasPorts := strings.Cut(s, "/")
	if !protocols[proto] {
		if _, err := strconv.Atoi(proto); err == nil && !hasPorts {
			return bad("Invalid port", fmt.Sprintf("%q has no protocol: write \"tcp/%s\" or \"udp/%s\".", v.V, s, s))
		}
		return bad("Invalid port", fmt.Sprintf("%q: the protocol must be tcp, udp or icmp, as in \"tcp/443\", \"udp/53\", \"icmp\".", v.V))
	}
	if proto == "icmp" {
		if hasPorts {
			return bad("Invalid port", fmt.Sprintf("%q: icmp has no ports; write \"icmp\".", v.V))
		}
		return Port{Proto: "icmp", Range: v.Range}, nil
	}
	if !hasPorts {
		return bad("Invalid port", fmt.Sprintf("%q needs a port: write %s/PORT or %s/FROM-TO, or leave ports out for every protocol.", v.V, proto, proto))
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	from, err := portNumber(lo)
	if err != nil {
		return bad("Invalid port", fmt.Sprintf("%q: %v.", v.V, err))
	}
	to := from
	if isRange {
		if to, err = portNumber(hi); err != nil {
			return bad("Invalid port", fmt.Sprintf("%q: %v.", v.V, err))
		}
		if to < from {
			return bad("Invalid port range", fmt.Sprintf("%q runs backwards: write %s/%d-%d.", v.V, proto, to, from))
		}
	}
	return Port{Proto: proto, From: from, To: to, Range: v.Range}, nil
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1-65535", n)
	}
	return uint16(n), nil
}

// nameRE is what allowlist, group and host labels may be: they appear in
// rule comments and on command lines.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func checkName(kind, name string, rng hcl.Range) *hcl.Diagnostic {
	if nameRE.MatchString(name) {
		return nil
	}
	article := "a"
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		article = "an"
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s name", kind),
		Detail:  fmt.Sprintf("%q: %s %s name is 1 to 63 letters, digits, dots, dashes and underscores, starting with a letter or digit.", name, article, kind),
		Subject: rng.Ptr()}
}

// suggest returns ` (did you mean "x"?)` for the known name closest to
// name, if one is close enough.
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
