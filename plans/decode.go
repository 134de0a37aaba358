package plans

import (
	"time"

	"fmt"
	"math"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "defaults"},
		{Type: "allowlist", LabelNames: []string{"name"}},
		{Type: "group", LabelNames: []string{"name"}},
		{Type: "host", LabelNames: []string{"name"}},
		{Type: "ansible_inventory"},
		{Type: "rollout"},
	},
}

var connectionAttrs = []hcl.AttributeSchema{
	{Name: "user"}, {Name: "port"}, {Name: "identity_file"}, {Name: "sudo"},
	{Name: "jump"}, {Name: "known_hosts"}, {Name: "revert_after"}, {Name: "dns_refresh"},
}

var (
	defaultsSchema  = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{{Name: "coexist"}}, connectionAttrs...)}
	hostSchema      = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{{Name: "address"}, {Name: "groups"}, {Name: "allowlists"}, {Name: "for_each"}, {Name: "name"}}, connectionAttrs...)}
	groupSchema     = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "allowlists"}}}
	rolloutSchema   = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "parallel"}, {Name: "canary"}, {Name: "batch"}, {Name: "max_failures"}}}
	allowlistSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "dns"}, {Name: "ping"}, {Name: "log_drops"}, {Name: "mode"}, {Name: "keep_chains"}, {Name: "coexist"},
			{Name: "dhcp"}, {Name: "dhcpv6"}, {Name: "mld"}, {Name: "mdns"}},
		Blocks: []hcl.BlockHeaderSchema{{Type: "inbound"}, {Type: "outbound"}, {Type: "expect_blocked"}},
	}
	// from, to and a group's allowlists are required, but not marked so:
	// decode reports them missing with a Detail that says what to write.
	inboundSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "from"}, {Name: "ports"}}}
	outboundSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "to"}, {Name: "ports"}}}
)

// decode turns parsed files into a Plan: variables first, then locals, then
// every other block, each evaluated with both in scope; then the references
// between blocks are checked and every host's allowlists merged.
func decode(files []*hcl.File, opts Options, df *dataFiles) (*Plan, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	byType := map[string][]*hcl.Block{}
	for _, f := range files {
		content, d := bodyContent(f.Body, rootSchema)
		diags = append(diags, d...)
		for _, b := range content.Blocks {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}
	vars, d := evalVariables(byType["variable"], opts)
	diags = append(diags, d...)
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: functions(df),
	}
	diags = append(diags, evalLocals(byType["locals"], ctx)...)

	p := &Plan{Rollout: DefaultRollout}
	diags = append(diags, p.decodeDefaults(byType["defaults"], ctx)...)
	diags = append(diags, p.decodeRollout(byType["rollout"], ctx)...)
	for _, b := range byType["allowlist"] {
		diags = append(diags, p.decodeAllowlist(b, ctx)...)
	}
	for _, b := range byType["group"] {
		diags = append(diags, p.decodeGroup(b, ctx)...)
	}
	for _, b := range byType["host"] {
		diags = append(diags, p.decodeHost(b, ctx, df)...)
	}
	for _, b := range byType["ansible_inventory"] {
		diags = append(diags, p.decodeAnsibleInventory(b, ctx, df)...)
	}
	if len(p.Hosts) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No hosts",
			Detail: "The plan has no hosts: add a host block per Pi, like host \"pi-01\" { address = \"192.0.2.11\" allowlists = [\"kiosk\"] }, " +
				"a host block with for_each over a list of them, or an ansible_inventory block."})
	}
	// References are checked even when some blocks had errors, so that one
	// run reports every mistake; lints only run on a plan without errors.
	diags = append(diags, dedupe(p.link())...)
	diags = dropConsequences(diags)
	if diags.HasErrors() {
		return p, diags
	}
	diags = append(diags, p.lint()...)
	return p, diags
}

// bodyContent is body.Content with its diagnostics in the order of their
// subjects in the file: hclsyntax reports unexpected arguments in the order
// of a map, which would change from one run to the next.
func bodyContent(body hcl.Body, schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := body.Content(schema)
	sort.SliceStable(diags, func(i, j int) bool { return offset(diags[i]) < offset(diags[j]) })
	return c, diags
}

// offset is where a diagnostic's subject starts; one without comes last.
func offset(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return math.MaxInt
	}
	return d.Subject.Start.Byte
}

// single returns the one block of a kind that may appear once, reporting
// any other.
func single(blocks []*hcl.Block, kind string) (*hcl.Block, hcl.Diagnostics) {
	if len(blocks) == 0 {
		return nil, nil
	}
	var diags hcl.Diagnostics
	for _, b := range blocks[1:] {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s block", kind),
			Detail:  fmt.Sprintf("A plan has one %s block; the first is at %s. Merge them.", kind, blocks[0].DefRange),
			Subject: b.DefRange.Ptr()})
	}
	return blocks[0], diags
}

func (p *Plan) decodeDefaults(blocks []*hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	b, diags := single(blocks, "defaults")
	if b == nil {
		return diags
	}
	content, d := bodyContent(b.Body, defaultsSchema)
	diags = append(diags, d...)
	if at, ok := content.Attributes["coexist"]; ok {
		var d hcl.Diagnostics
		p.Coexist, d = owners(at, ctx)
		diags = append(diags, d...)
	}
	return append(diags, decodeConnection(content, ctx, &p.Defaults)...)
}

// builtinMatch is the built-in chain a keep_chains pattern matches, or "".
func builtinMatch(pattern string) string {
	for _, b := range []string{"INPUT", "FORWARD", "OUTPUT"} {
		if ok, _ := path.Match(pattern, b); ok {
			return b
		}
	}
	return ""
}

// owners decodes coexist = [...]: names from Owners.
func owners(at *hcl.Attribute, ctx *hcl.EvalContext) ([]Value[string], hcl.Diagnostics) {
	vals, diags := stringList(at, ctx)
	var out []Value[string]
	for _, v := range vals {
		if !slices.Contains(Owners, v.V) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown owner",
				Detail:  fmt.Sprintf("%q is not an owner piwall knows; coexist takes %s. For other rules, name their chains in keep_chains.", v.V, strings.Join(Owners, ", ")),
				Subject: v.Range.Ptr()})
			continue
		}
		out = append(out, v)
	}
	return out, diags
}

func decodeConnection(content *hcl.BodyContent, ctx *hcl.EvalContext, c *Connection) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var d hcl.Diagnostics
	attrs := content.Attributes
	if a, ok := attrs["user"]; ok {
		c.User, d = stringValue(a, ctx)
		diags = append(diags, d...)
	}
	if a, ok := attrs["port"]; ok {
		c.Port, d = intValue(a, ctx, 1, 65535)
		diags = append(diags, d...)
	}
	if a, ok := attrs["identity_file"]; ok {
		c.IdentityFile, d = stringValue(a, ctx)
		diags = append(diags, d...)
	}
	if a, ok := attrs["sudo"]; ok {
		c.Sudo, d = boolValue(a, ctx)
		diags = append(diags, d...)
	}
	if a, ok := attrs["jump"]; ok {
		c.Jump, d = stringValue(a, ctx)
		diags = append(diags, d...)
	}
	if a, ok := attrs["known_hosts"]; ok {
		c.KnownHosts, d = stringValue(a, ctx)
		diags = append(diags, d...)
	}
	if a, ok := attrs["revert_after"]; ok {
		c.RevertAfter, d = durationValue(a, ctx)
		diags = append(diags, d...)
		if v := c.RevertAfter; v != nil && v.V < MinRevertAfter {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "revert_after too short",
				Detail: fmt.Sprintf("revert_after = %q leaves less than %s to confirm the new rules over a new SSH connection, which takes that long on a slow link or a busy Pi: "+
					"the dead-man would undo rules that work. Write %q or more (the default is %s).", v.V.String(), MinRevertAfter, MinRevertAfter.String(), DefaultRevertAfter),
				Subject: v.Range.Ptr()})
			c.RevertAfter = nil
		}
	}
	if a, ok := attrs["dns_refresh"]; ok {
		c.DNSRefresh, d = refreshValue(a, ctx)
		diags = append(diags, d...)
	}
	return diags
}

// refreshValue decodes dns_refresh: a duration from MinDNSRefresh to 24h,
// or "0" for no refresher.
func refreshValue(attr *hcl.Attribute, ctx *hcl.EvalContext) (*Value[time.Duration], hcl.Diagnostics) {
	s, diags := stringValue(attr, ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	if s.V == "0" {
		return &Value[time.Duration]{V: 0, Range: s.Range}, nil
	}
	d, err := time.ParseDuration(s.V)
	if err != nil || d < MinDNSRefresh || d > 24*time.Hour {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid dns_refresh",
			Detail: fmt.Sprintf("dns_refresh must be a duration from %s to 24h, like \"5m\", or \"0\" to compile the addresses a name has at plan time into the rules, not %q.",
				MinDNSRefresh, s.V),
			Subject: attr.Expr.Range().Ptr()}}
	}
	return &Value[time.Duration]{V: d, Range: s.Range}, nil
}

func (p *Plan) decodeRollout(blocks []*hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	b, diags := single(blocks, "rollout")
	if b == nil {
		return diags
	}
	content, d := bodyContent(b.Body, rolloutSchema)
	diags = append(diags, d...)
	fields := []struct {
		name   string
		lo, hi int
		dst    *int
	}{
		{"parallel", 1, 10000, &p.Rollout.Parallel},
		{"canary", 0, 10000, &p.Rollout.Canary},
		{"batch", 0, 100000, &p.Rollout.Batch},
		{"max_failures", 0, 100000, &p.Rollout.MaxFailures},
	}
	for _, f := range fields {
		if a, ok := content.Attributes[f.name]; ok {
			v, d := intValue(a, ctx, f.lo, f.hi)
			diags = append(diags, d...)
			if v != nil {
				*f.dst = v.V
			}
		}
	}
	return diags
}

func (p *Plan) decodeAllowlist(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	name := b.Labels[0]
	var diags hcl.Diagnostics
	if d := checkName("allowlist", name, b.LabelRanges[0]); d != nil {
		diags = append(diags, d)
	}
	if prev := p.Allowlist(name); prev != nil {
		return append(diags, duplicate("allowlist", name, b.LabelRanges[0], prev.DeclRange))
	}
	a := &Allowlist{Name: name, DeclRange: b.DefRange}
	content, d := bodyContent(b.Body, allowlistSchema)
	diags = append(diags, d...)
	for _, eb := range content.Blocks {
		dir, schema, attr := Inbound, inboundSchema, "from"
		missing := "An inbound block needs from, the peers that may open connections to the host: write from = [\"192.0.2.0/24\"] (addresses, networks or DNS names)."
		switch eb.Type {
		case "outbound":
			dir, schema, attr = Outbound, outboundSchema, "to"
			missing = "An outbound block needs to, the peers the host may open connections to: write to = [\"api.example.com\"] (addresses, networks or DNS names)."
		case "expect_blocked":
			dir, schema, attr = ExpectBlocked, outboundSchema, "to"
			missing = "An expect_blocked block needs to, the peers the host must not reach: write to = [\"blocked.example.com\"] (addresses, networks or DNS names)."
		}
		ec, d := bodyContent(eb.Body, schema)
		diags = append(diags, d...)
		e := &Entry{Allowlist: name, Direction: dir, DeclRange: eb.DefRange}
		switch dir {
		case Inbound:
			a.Inbound = append(a.Inbound, e)
			e.Index = len(a.Inbound)
		case Outbound:
			a.Outbound = append(a.Outbound, e)
			e.Index = len(a.Outbound)
		default:
			a.ExpectBlocked = append(a.ExpectBlocked, e)
			e.Index = len(a.ExpectBlocked)
		}
		at, ok := ec.Attributes[attr]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
				Detail: missing, Subject: eb.DefRange.Ptr()})
		} else {
			vals, d := stringList(at, ctx)
			diags = append(diags, d...)
			for _, v := range vals {
				ep, bad := parseEndpoint(v)
				if bad != nil {
					diags = append(diags, bad)
					continue
				}
				e.Peers = append(e.Peers, ep)
			}
			if len(vals) == 0 && !d.HasErrors() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty peer list",
					Detail:  fmt.Sprintf("%s lists no peers, so it allows nothing: list addresses, networks or names, or remove the block.", attr),
					Subject: at.Expr.Range().Ptr()})
			}
		}
		if at, ok := ec.Attributes["ports"]; ok {
			vals, d := stringList(at, ctx)
			diags = append(diags, d...)
			for _, v := range vals {
				port, bad := parsePort(v)
				if bad != nil {
					diags = append(diags, bad)
					continue
				}
				e.Ports = append(e.Ports, port)
			}
			if len(vals) == 0 && !d.HasErrors() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty port list",
					Detail:  "ports = [] would allow nothing: list ports, or leave ports out to allow every protocol.",
					Subject: at.Expr.Range().Ptr()})
			}
		}
	}
	if at, ok := content.Attributes["dns"]; ok {
		dns, d := decodeDNS(at, ctx)
		diags = append(diags, d...)
		a.DNS = dns
	}
	if at, ok := content.Attributes["ping"]; ok {
		a.Ping, d = boolValue(at, ctx)
		diags = append(diags, d...)
	}
	if at, ok := content.Attributes["mode"]; ok {
		v, d := stringValue(at, ctx)
		diags = append(diags, d...)
		if v != nil {
			switch v.V {
			case "enforce", "audit":
				a.Audit = &Value[bool]{V: v.V == "audit", Range: v.Range}
			default:
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid mode",
					Detail: fmt.Sprintf("mode = %q%s: write \"enforce\" (drop what the allowlist does not allow; the default) or \"audit\" "+
						"(log it as what would be dropped, and accept it).", v.V, suggest(v.V, []string{"enforce", "audit"})),
					Subject: v.Range.Ptr()})
			}
		}
	}
	if at, ok := content.Attributes["log_drops"]; ok {
		a.LogDrops, d = boolValue(at, ctx)
		diags = append(diags, d...)
	}
	for _, sw := range a.switches() {
		if at, ok := content.Attributes[sw.name]; ok {
			*sw.v, d = boolValue(at, ctx)
			diags = append(diags, d...)
		}
	}
	if at, ok := content.Attributes["keep_chains"]; ok {
		vals, d := stringList(at, ctx)
		diags = append(diags, d...)
		for _, v := range vals {
			if !chainPatternRE.MatchString(v.V) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid chain pattern",
					Detail:  fmt.Sprintf("%q: a chain name or glob of letters, digits, '-', '_', '.', with '*' and '?' as wildcards (like \"DOCKER*\").", v.V),
					Subject: v.Range.Ptr()})
				continue
			}
			if b := builtinMatch(v.V); b != "" {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Chain pattern matches a built-in chain",
					Detail:  fmt.Sprintf("%q matches %s: the built-in chains are piwall's; keep_chains names the chains of other programs (like \"DOCKER*\").", v.V, b),
					Subject: v.Range.Ptr()})
				continue
			}
			a.KeepChains = append(a.KeepChains, v)
		}
	}
	if at, ok := content.Attributes["coexist"]; ok {
		var d hcl.Diagnostics
		a.Coexist, d = owners(at, ctx)
		diags = append(diags, d...)
	}
	p.Allowlists = append(p.Allowlists, a)
	return diags
}

func decodeDNS(at *hcl.Attribute, ctx *hcl.EvalContext) (*Value[DNS], hcl.Diagnostics) {
	v, diags := at.Expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	if !v.IsWhollyKnown() {
		return nil, hcl.Diagnostics{unknownValue(attrName(at), at.Expr.Range())}
	}
	if v.Type() == cty.String && !v.IsNull() {
		switch s := v.AsString(); s {
		case "system", "none":
			return &Value[DNS]{V: DNS{Mode: s}, Range: at.Expr.Range()}, nil
		default:
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid dns setting",
				Detail:  fmt.Sprintf("dns = %q%s: write \"system\" (the host's own resolvers), \"none\", or a list of resolver addresses like [\"192.0.2.53\"].", s, suggest(s, []string{"system", "none"})),
				Subject: at.Expr.Range().Ptr()}}
		}
	}
	vals, diags := stringList(at, ctx)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid dns setting",
			Detail:  "dns must be \"system\", \"none\", or a list of resolver addresses like [\"192.0.2.53\"].",
			Subject: at.Expr.Range().Ptr()}}
	}
	dns := DNS{Mode: "list"}
	for _, s := range vals {
		a, err := netip.ParseAddr(s.V)
		if err != nil || a.Zone() != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid resolver address",
				Detail:  fmt.Sprintf("%q: a resolver is one IPv4 or IPv6 address, not a name or a network.", s.V),
				Subject: s.Range.Ptr()})
			continue
		}
		dns.Resolvers = append(dns.Resolvers, a.Unmap())
	}
	if len(vals) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid dns setting",
			Detail: "dns = [] lists no resolver: write dns = \"none\" to allow no DNS at all.", Subject: at.Expr.Range().Ptr()})
	}
	return &Value[DNS]{V: dns, Range: at.Expr.Range()}, diags
}

func (p *Plan) decodeGroup(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	name := b.Labels[0]
	var diags hcl.Diagnostics
	if d := checkName("group", name, b.LabelRanges[0]); d != nil {
		diags = append(diags, d)
	}
	if prev := p.Group(name); prev != nil {
		return append(diags, duplicate("group", name, b.LabelRanges[0], prev.DeclRange))
	}
	g := &Group{Name: name, DeclRange: b.DefRange}
	content, d := bodyContent(b.Body, groupSchema)
	diags = append(diags, d...)
	if at, ok := content.Attributes["allowlists"]; ok {
		g.Allowlists, d = stringList(at, ctx)
		diags = append(diags, d...)
		g.badRefs = d.HasErrors()
	} else {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
			Detail:  "A group needs allowlists, the allowlists every host in it gets: write allowlists = [\"kiosk\"].",
			Subject: b.DefRange.Ptr()})
		g.badRefs = true
	}
	p.Groups = append(p.Groups, g)
	return diags
}

func (p *Plan) decodeHost(b *hcl.Block, ctx *hcl.EvalContext, df *dataFiles) hcl.Diagnostics {
	content, diags := bodyContent(b.Body, hostSchema)
	if at, ok := content.Attributes["for_each"]; ok {
		return append(diags, p.decodeHostEach(b, content, at, ctx, df)...)
	}
	if at, ok := content.Attributes["name"]; ok {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "name without for_each",
			Detail:  fmt.Sprintf("name names each host a host block makes with for_each; this block makes one host, named by its label %q. Remove name, or rename the block.", b.Labels[0]),
			Subject: at.NameRange.Ptr()})
	}
	return append(diags, p.decodeOneHost(Value[string]{V: b.Labels[0], Range: b.LabelRanges[0]}, b.DefRange, content, ctx)...)
}

// decodeOneHost decodes a host named name from a host block's content.
func (p *Plan) decodeOneHost(name Value[string], decl hcl.Range, content *hcl.BodyContent, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if d := checkName("host", name.V, name.Range); d != nil {
		diags = append(diags, d)
	}
	if prev := p.Host(name.V); prev != nil {
		return append(diags, duplicate("host", name.V, name.Range, prev.DeclRange))
	}
	h := &Host{Name: name.V, Address: name, DeclRange: decl}
	var d hcl.Diagnostics
	if at, ok := content.Attributes["address"]; ok {
		v, d := stringValue(at, ctx)
		diags = append(diags, d...)
		if v != nil {
			if bad := checkHostAddress(*v, "address"); bad != nil {
				diags = append(diags, bad)
			} else {
				h.Address = *v
			}
		}
	}
	if at, ok := content.Attributes["groups"]; ok {
		h.Groups, d = stringList(at, ctx)
		diags = append(diags, d...)
		h.badRefs = h.badRefs || d.HasErrors()
	}
	if at, ok := content.Attributes["allowlists"]; ok {
		h.Allowlists, d = stringList(at, ctx)
		diags = append(diags, d...)
		h.badRefs = h.badRefs || d.HasErrors()
	}
	diags = append(diags, decodeConnection(content, ctx, &h.Connection)...)
	p.Hosts = append(p.Hosts, h)
	return diags
}

// checkHostAddress reports an address that is not one IP address or DNS
// name.
func checkHostAddress(v Value[string], attr string) *hcl.Diagnostic {
	if ep, bad := parseEndpoint(v); bad != nil || (ep.Name == "" && !ep.Prefix.IsSingleIP()) {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid host address",
			Detail:  fmt.Sprintf("%s = %q: write the host's IP address or DNS name.", attr, v.V),
			Subject: v.Range.Ptr()}
	}
	return nil
}
