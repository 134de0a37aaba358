package plans

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// at is where the values under test were written, as if in a plan.
var at = hcl.Range{
	Filename: "site.hcl",
	Start:    hcl.Pos{Line: 3, Column: 14, Byte: 40},
	End:      hcl.Pos{Line: 3, Column: 30, Byte: 56},
}

func TestParseEndpoint(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Endpoint // Range is at
		str  string   // want.String()
	}{
		{"ipv4 address", "192.0.2.10", Endpoint{Prefix: netip.MustParsePrefix("192.0.2.10/32")}, "192.0.2.10"},
		{"ipv6 address", "2001:db8::10", Endpoint{Prefix: netip.MustParsePrefix("2001:db8::10/128")}, "2001:db8::10"},
		{"ipv4 network", "192.0.2.0/24", Endpoint{Prefix: netip.MustParsePrefix("192.0.2.0/24")}, "192.0.2.0/24"},
		{"ipv6 network", "2001:db8::/32", Endpoint{Prefix: netip.MustParsePrefix("2001:db8::/32")}, "2001:db8::/32"},
		{"ipv4 /32 network", "192.0.2.10/32", Endpoint{Prefix: netip.MustParsePrefix("192.0.2.10/32")}, "192.0.2.10"},
		{"whole ipv4 internet", "0.0.0.0/0", Endpoint{Prefix: netip.MustParsePrefix("0.0.0.0/0")}, "0.0.0.0/0"},
		{"whole ipv6 internet", "::/0", Endpoint{Prefix: netip.MustParsePrefix("::/0")}, "::/0"},
		{"ipv4-mapped ipv6 address", "::ffff:192.0.2.7", Endpoint{Prefix: netip.MustParsePrefix("192.0.2.7/32")}, "192.0.2.7"},
		{"dns name", "api.example.com", Endpoint{Name: "api.example.com"}, "api.example.com"},
		{"one-label name", "ntp", Endpoint{Name: "ntp"}, "ntp"},
		{"name in capitals with final dot", "API.Example.COM.", Endpoint{Name: "api.example.com"}, "api.example.com"},
		{"name with digits and dashes", "pi-03.lab-2.example", Endpoint{Name: "pi-03.lab-2.example"}, "pi-03.lab-2.example"},
		{"spaces around", "  192.0.2.10 ", Endpoint{Prefix: netip.MustParsePrefix("192.0.2.10/32")}, "192.0.2.10"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, diag := parseEndpoint(Value[string]{V: tt.in, Range: at})
			if diag != nil {
				t.Fatalf("parseEndpoint(%q): unexpected %s: %s", tt.in, diag.Summary, diag.Detail)
			}
			tt.want.Range = at
			if got != tt.want {
				t.Errorf("parseEndpoint(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("parseEndpoint(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
		})
	}
}

func TestParseEndpointErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		summary string
		detail  string // a part of the Detail: what to write instead
	}{
		{"cidr with host bits", "10.1.2.3/8", "Invalid CIDR", "the network is 10.0.0.0/8 (or write the single address 10.1.2.3)"},
		{"ipv6 cidr with host bits", "fd00:1::1/64", "Invalid CIDR", "the network is fd00:1::/64"},
		{"ipv4 prefix too long", "192.0.2.0/33", "Invalid CIDR", "write /0 to /32"},
		{"ipv6 prefix too long", "2001:db8::/129", "Invalid CIDR", "write /0 to /128"},
		{"prefix not a number", "192.0.2.0/x", "Invalid CIDR", "write /0 to /32"},
		{"prefix missing", "192.0.2.0/", "Invalid CIDR", "write /0 to /32"},
		{"name with a prefix", "api.example.com/32", "Invalid CIDR", `Write "api.example.com" for the name`},
		{"network with a zone", "fe80::%eth0/64", "Invalid CIDR", "like fe80::/64"},
		{"ipv4-mapped network", "::ffff:10.0.0.0/104", "Invalid CIDR", "write it as IPv4"},
		{"neither address nor name before the prefix", "10.0.0.300/24", "Invalid CIDR", "like 192.0.2.0/24"},
		{"octet over 255", "10.0.0.300", "Invalid address", "four numbers from 0 to 255"},
		{"three octets", "10.0.1", "Invalid address", "write an address like 192.0.2.10"},
		{"bad ipv6", "2001:db8:::1", "Invalid address", "2001:db8::10"},
		{"address with a zone", "fe80::1%eth0", "Invalid address", `write "fe80::1"`},
		{"empty", "", "Empty endpoint", "a DNS name (api.example.com)"},
		{"blank", "   ", "Empty endpoint", "a DNS name (api.example.com)"},
		{"underscore in a name", "pi_01.lan", "Invalid DNS name", "labels of letters, digits and dashes"},
		{"label starting with a dash", "-pi.example.com", "Invalid DNS name", "labels of letters, digits and dashes"},
		{"space in a name", "api example.com", "Invalid DNS name", "labels of letters, digits and dashes"},
		{"name over 253 characters", strings.Repeat("a.", 127) + "ab", "Invalid DNS name", "labels of letters, digits and dashes"},
		{"url", "https://api.example.com/v1", "Invalid endpoint", `write the host alone, "api.example.com", and its port in ports`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, diag := parseEndpoint(Value[string]{V: tt.in, Range: at})
			if diag == nil {
				t.Fatalf("parseEndpoint(%q) = %+v, want error %q", tt.in, got, tt.summary)
			}
			checkDiag(t, diag, tt.summary, tt.detail)
		})
	}
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Port // Range is at
		str  string
	}{
		{"tcp port", "tcp/443", Port{Proto: "tcp", From: 443, To: 443}, "tcp/443"},
		{"udp port", "udp/53", Port{Proto: "udp", From: 53, To: 53}, "udp/53"},
		{"tcp range", "tcp/8000-8100", Port{Proto: "tcp", From: 8000, To: 8100}, "tcp/8000-8100"},
		{"range of one port", "udp/123-123", Port{Proto: "udp", From: 123, To: 123}, "udp/123"},
		{"lowest and highest ports", "tcp/1-65535", Port{Proto: "tcp", From: 1, To: 65535}, "tcp/1-65535"},
		{"icmp", "icmp", Port{Proto: "icmp"}, "icmp"},
		{"capitals", "TCP/22", Port{Proto: "tcp", From: 22, To: 22}, "tcp/22"},
		{"spaces around", " udp/123 ", Port{Proto: "udp", From: 123, To: 123}, "udp/123"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, diag := parsePort(Value[string]{V: tt.in, Range: at})
			if diag != nil {
				t.Fatalf("parsePort(%q): unexpected %s: %s", tt.in, diag.Summary, diag.Detail)
			}
			tt.want.Range = at
			if got != tt.want {
				t.Errorf("parsePort(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("parsePort(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
			// What String prints reads back as the same port.
			again, diag := parsePort(Value[string]{V: got.String(), Range: at})
			if diag != nil || again != got {
				t.Errorf("parsePort(%q) = %+v, %v; want %+v", got.String(), again, diag, got)
			}
		})
	}
}

func TestParsePortErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		summary string
		detail  string // a part of the Detail: what to write instead
	}{
		{"port above 65535", "tcp/70000", "Invalid port", "port 70000 is out of range 1-65535"},
		{"port zero", "tcp/0", "Invalid port", "port 0 is out of range 1-65535"},
		{"negative port", "udp/-1", "Invalid port", `"" is not a port number`},
		{"range end above 65535", "tcp/80-65536", "Invalid port", "port 65536 is out of range 1-65535"},
		{"unknown protocol", "xyz/1", "Invalid port", `the protocol must be tcp, udp or icmp, as in "tcp/443"`},
		{"service name", "https", "Invalid port", `the protocol must be tcp, udp or icmp`},
		{"empty", "", "Invalid port", `the protocol must be tcp, udp or icmp`},
		{"reversed range", "tcp/90-80", "Invalid port range", "write tcp/80-90"},
		{"number without protocol", "443", "Invalid port", `write "tcp/443" or "udp/443"`},
		{"icmp with a type", "icmp/8", "Invalid port", `write "icmp"`},
		{"udp without port", "udp", "Invalid port", "write udp/PORT or udp/FROM-TO"},
		{"tcp with a slash and nothing", "tcp/", "Invalid port", `"" is not a port number`},
		{"port not a number", "tcp/ssh", "Invalid port", `"ssh" is not a port number`},
		{"range without end", "tcp/8000-", "Invalid port", `"" is not a port number`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, diag := parsePort(Value[string]{V: tt.in, Range: at})
			if diag == nil {
				t.Fatalf("parsePort(%q) = %+v, want error %q", tt.in, got, tt.summary)
			}
			checkDiag(t, diag, tt.summary, tt.detail)
		})
	}
}

// checkDiag checks an error about the value written at at.
func checkDiag(t *testing.T, d *hcl.Diagnostic, summary, detail string) {
	t.Helper()
	if d.Severity != hcl.DiagError {
		t.Errorf("severity %v, want error", d.Severity)
	}
	if d.Summary != summary {
		t.Errorf("summary %q, want %q", d.Summary, summary)
	}
	if !strings.Contains(d.Detail, detail) {
		t.Errorf("detail %q, want it to contain %q", d.Detail, detail)
	}
	if d.Subject == nil || *d.Subject != at {
		t.Errorf("subject %v, want %v, the value itself", d.Subject, at)
	}
}
