package modules

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/piwall/piwall/modules/firewall"
	"github.com/piwall/piwall/plans"
)

// The offline tests: what `piwall render` compiles a host's rulesets from
// when it does not reach the host, the names pinned with --address, looked
// up here with --resolve=local, and the resolvers of dns = "system".
//
//	go test ./modules -run 'Offline|ParsePins|ParseResolvers'
//	go test ./modules -run '^$' -fuzz FuzzParsePins -fuzztime 60s

// fakeResolve answers from siteNames, as the Pis' DNS does, and records
// the names asked.
type fakeResolve struct {
	asked []string
	fail  string // a name that does not resolve here
}

func (r *fakeResolve) resolve(_ context.Context, name string) (firewall.Resolution, error) {
	r.asked = append(r.asked, name)
	if name == r.fail {
		return firewall.Resolution{}, fmt.Errorf("resolving %s here: no such host", name)
	}
	res, ok := siteNames[name]
	if !ok {
		return firewall.Resolution{}, fmt.Errorf("resolving %s here: not in the test's DNS", name)
	}
	return res, nil
}

// withDNS is one of testdata/site.hcl's hosts with its dns setting changed.
func withDNS(t *testing.T, name string, dns plans.DNS) *plans.Host {
	t.Helper()
	h := *siteHost(t, name)
	pol := *h.Policy
	pol.DNS = dns
	h.Policy = &pol
	return &h
}

func TestOfflineInput(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	writeFile(t, conf, resolvConf)
	noNameserver := filepath.Join(dir, "resolv.conf.stub")
	writeFile(t, noNameserver, "# managed by NetworkManager\nsearch lan\n")
	missing := filepath.Join(dir, "no-resolv.conf")
	siteResolvers := firewall.ParseResolvConf(resolvConf)
	given := addrs("10.0.0.53")

	pinDashboard := map[string]firewall.Resolution{"dashboard.example.com": siteNames["dashboard.example.com"]}
	tests := []struct {
		name      string
		host      func(t *testing.T) *plans.Host
		offline   Offline
		fail      string   // a name the fake resolver cannot resolve
		names     []string // the names in the input, when it succeeds
		resolvers []netip.Addr
		asked     []string // the names looked up with Resolve
		err       string
		hint      string
	}{
		{
			name: "pinned names, resolvers given", host: pi01,
			offline: Offline{Pins: siteNames, Resolvers: siteResolvers},
			names:   []string{"api.example.com", "dashboard.example.com"}, resolvers: siteResolvers,
		},
		{
			name: "local, with this machine's resolv.conf", host: pi01,
			offline: Offline{Local: true, ResolvConf: conf},
			names:   []string{"api.example.com", "dashboard.example.com"}, resolvers: siteResolvers,
			asked: []string{"dashboard.example.com", "api.example.com"},
		},
		{
			name: "pinned names first, local for the rest", host: pi01,
			offline: Offline{Pins: pinDashboard, Local: true, Resolvers: given},
			names:   []string{"api.example.com", "dashboard.example.com"}, resolvers: given,
			asked: []string{"api.example.com"},
		},
		{
			name: "given resolvers win over this machine's", host: pi01,
			offline: Offline{Local: true, Resolvers: given, ResolvConf: missing},
			names:   []string{"api.example.com", "dashboard.example.com"}, resolvers: given,
			asked: []string{"dashboard.example.com", "api.example.com"},
		},
		{
			name: "pins of names the host does not use", host: pi09,
			offline: Offline{Pins: siteNames, Resolvers: given},
			names:   nil, resolvers: given,
		},
		{
			name: "dns none needs no resolvers", host: func(t *testing.T) *plans.Host { return withDNS(t, "pi-09", plans.DNS{Mode: "none"}) },
			offline: Offline{},
		},
		{
			name: "dns listed needs no resolvers", host: func(t *testing.T) *plans.Host {
				return withDNS(t, "pi-09", plans.DNS{Mode: "list", Resolvers: addrs("9.9.9.9")})
			},
			offline: Offline{Local: true, ResolvConf: missing},
		},
		{
			name: "local lookup fails", host: pi01,
			offline: Offline{Local: true, Resolvers: given}, fail: "api.example.com",
			asked: []string{"dashboard.example.com", "api.example.com"},
			err:   "host pi-01: resolving api.example.com here: no such host", hint: "pin it with --address api.example.com=ADDR",
		},
		{
			name: "names neither pinned nor looked up", host: pi01,
			offline: Offline{Pins: pinDashboard, Resolvers: given},
			err:     "host pi-01: api.example.com not resolved: names are resolved on the host when piwall plans, and render does not reach it",
			hint:    "resolve them with this machine's resolver with --resolve=local, or pin them with --address NAME=ADDR[,ADDR...]",
		},
		{
			name: "every name unresolved is listed", host: pi01,
			offline: Offline{Resolvers: given},
			err:     "host pi-01: dashboard.example.com, api.example.com not resolved: names are resolved on the host when piwall plans, and render does not reach it",
			hint:    "resolve them with this machine's resolver with --resolve=local, or pin them with --address NAME=ADDR[,ADDR...]",
		},
		{
			name: "system DNS without resolvers", host: pi01,
			offline: Offline{Pins: siteNames},
			err:     `host pi-01 has dns = "system": its resolvers are on the host, and render does not reach it`,
			hint:    "name them with --resolver ADDR, or use this machine's with --resolve=local",
		},
		{
			name: "this machine's resolv.conf is missing", host: pi09,
			offline: Offline{Local: true, ResolvConf: missing},
			err:     "reading this machine's resolvers: open " + missing + ": no such file or directory", hint: "name the host's with --resolver ADDR",
		},
		{
			name: "this machine's resolv.conf names no nameserver", host: pi09,
			offline: Offline{Local: true, ResolvConf: noNameserver},
			err:     "this machine's resolvers: " + noNameserver + " has no nameserver line", hint: "name the host's with --resolver ADDR",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeResolve{fail: tc.fail}
			o := tc.offline
			o.Resolve = fake.resolve
			h := tc.host(t)
			in, err := o.Input(context.Background(), h)
			if !slices.Equal(fake.asked, tc.asked) {
				t.Errorf("looked up %q, want %q", fake.asked, tc.asked)
			}
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Input = %+v, %v;\nwant error %q", in, err, tc.err)
				}
				if got := Hints(err); !slices.Equal(got, []string{tc.hint}) {
					t.Errorf("Hints = %q, want %q", got, tc.hint)
				}
				return
			}
			if err != nil {
				t.Fatalf("Input: %v", err)
			}
			if in.Policy != h.Policy {
				t.Errorf("Input.Policy is not the host's")
			}
			var names []string
			for name, r := range in.Names {
				names = append(names, name)
				if !reflect.DeepEqual(r, siteNames[name]) {
					t.Errorf("Names[%s] = %+v, want %+v", name, r, siteNames[name])
				}
			}
			if slices.Sort(names); !slices.Equal(names, tc.names) {
				t.Errorf("names %q, want %q", names, tc.names)
			}
			if !slices.Equal(in.Resolvers, tc.resolvers) {
				t.Errorf("Resolvers = %v, want %v", in.Resolvers, tc.resolvers)
			}
			if _, err := firewall.Compile(in); err != nil {
				t.Errorf("Compile(Input): %v", err)
			}
		})
	}
}

func pi01(t *testing.T) *plans.Host { return siteHost(t, "pi-01") }
func pi09(t *testing.T) *plans.Host { return siteHost(t, "pi-09") }

// Offline, pi-01 compiles to the rulesets it gets on the Pis when its
// names and resolvers are those the Pis see.
func TestOfflineInputCompilesAsOnTheHost(t *testing.T) {
	pins, err := ParsePins([]string{
		"dashboard.example.com=93.184.216.34,2606:2800:220:1:248:1893:25c8:1946",
		"API.example.com=198.51.100.20,198.51.100.21,2001:db8:20::20",
	})
	if err != nil {
		t.Fatalf("ParsePins: %v", err)
	}
	resolvers, err := ParseResolvers([]string{"192.168.1.1", "fd00:1::1"})
	if err != nil {
		t.Fatalf("ParseResolvers: %v", err)
	}
	// The Pis see the CNAME; a pin does not know it, and the rules do not
	// depend on it.
	o := Offline{Pins: pins, Resolvers: resolvers}
	in, err := o.Input(context.Background(), siteHost(t, "pi-01"))
	if err != nil {
		t.Fatalf("Input: %v", err)
	}
	d, err := firewall.Compile(in)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	want := desiredPi01(t)
	if got, want := d.V4.Text()+d.V6.Text(), want.V4.Text()+want.V6.Text(); got != want {
		t.Errorf("offline rulesets:\n%s\nwant those of the Pis:\n%s", got, want)
	}
}

func TestParsePins(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		want  map[string]firewall.Resolution
		err   string
		hint  string
	}{
		{name: "no pins", flags: nil, want: map[string]firewall.Resolution{}},
		{
			name: "one address", flags: []string{"api.example.com=198.51.100.20"},
			want: map[string]firewall.Resolution{"api.example.com": {Name: "api.example.com", Addrs: addrs("198.51.100.20")}},
		},
		{
			name: "several addresses, both families, spaces", flags: []string{"api.example.com=198.51.100.20, 2001:db8:20::20 ,198.51.100.21"},
			want: map[string]firewall.Resolution{"api.example.com": {Name: "api.example.com", Addrs: addrs("198.51.100.20", "2001:db8:20::20", "198.51.100.21")}},
		},
		{
			name: "names lowercased, mapped addresses unmapped", flags: []string{"Dashboard.Example.COM=::ffff:93.184.216.34", "api.example.com=198.51.100.20"},
			want: map[string]firewall.Resolution{
				"dashboard.example.com": {Name: "dashboard.example.com", Addrs: addrs("93.184.216.34")},
				"api.example.com":       {Name: "api.example.com", Addrs: addrs("198.51.100.20")},
			},
		},
		{name: "no equals sign", flags: []string{"api.example.com"}, err: `--address "api.example.com": not NAME=ADDR`,
			hint: "write --address NAME=ADDR[,ADDR...], e.g. --address api.example.com=203.0.113.7"},
		{name: "no name", flags: []string{"=198.51.100.20"}, err: `--address "=198.51.100.20": not NAME=ADDR`,
			hint: "write --address NAME=ADDR[,ADDR...], e.g. --address api.example.com=203.0.113.7"},
		{name: "no address", flags: []string{"api.example.com= "}, err: `--address "api.example.com= ": not NAME=ADDR`,
			hint: "write --address NAME=ADDR[,ADDR...], e.g. --address api.example.com=203.0.113.7"},
		{name: "not an address", flags: []string{"api.example.com=edge.example.net"}, err: `--address api.example.com=edge.example.net: "edge.example.net" is not an address`},
		{name: "a trailing comma", flags: []string{"api.example.com=198.51.100.20,"}, err: `--address api.example.com=198.51.100.20,: "" is not an address`},
		{name: "a network where an address was meant", flags: []string{"api.example.com=198.51.100.0/24"},
			err: `--address api.example.com=198.51.100.0/24: "198.51.100.0/24" is a network, not an address`, hint: "give the addresses themselves, separated by commas"},
		{name: "an address with a port", flags: []string{"api.example.com=198.51.100.20:443"},
			err: `--address api.example.com=198.51.100.20:443: "198.51.100.20:443" is an address with a port`, hint: "give the address alone: 198.51.100.20"},
		{name: "an address with a zone", flags: []string{"router.lan=fe80::1%eth0"},
			err: `--address router.lan=fe80::1%eth0: "fe80::1%eth0" has a zone, which a rule cannot match`, hint: "give the address alone: fe80::1"},
		{name: "a name pinned twice", flags: []string{"api.example.com=198.51.100.20", "API.example.com=198.51.100.21"},
			err:  "--address API.example.com=198.51.100.21: api.example.com is pinned already, by --address api.example.com=198.51.100.20",
			hint: "give all its addresses in one flag: --address NAME=ADDR,ADDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePins(tc.flags)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParsePins(%q) = %v, %v;\nwant error %q", tc.flags, got, err, tc.err)
				}
				var hints []string
				if tc.hint != "" {
					hints = []string{tc.hint}
				}
				if h := Hints(err); !slices.Equal(h, hints) {
					t.Errorf("Hints = %q, want %q", h, hints)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePins(%q): %v", tc.flags, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParsePins(%q):\ngot  %+v\nwant %+v", tc.flags, got, tc.want)
			}
		})
	}
}

func TestParseResolvers(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		want  []netip.Addr
		err   string
	}{
		{name: "none", flags: nil, want: nil},
		{name: "both families, in order", flags: []string{"192.168.1.1", "fd00:1::1"}, want: addrs("192.168.1.1", "fd00:1::1")},
		{name: "a mapped address", flags: []string{"::ffff:192.168.1.1"}, want: addrs("192.168.1.1")},
		{name: "a name", flags: []string{"dns.lan"}, err: `--resolver dns.lan: "dns.lan" is not an address`},
		{name: "a network", flags: []string{"192.168.1.0/24"}, err: `--resolver 192.168.1.0/24: "192.168.1.0/24" is a network, not an address`},
		{name: "with a port", flags: []string{"192.168.1.1:53"}, err: `--resolver 192.168.1.1:53: "192.168.1.1:53" is an address with a port`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseResolvers(tc.flags)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseResolvers(%q) = %v, %v; want error %q", tc.flags, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ParseResolvers(%q) = %v, %v; want %v", tc.flags, got, err, tc.want)
			}
		})
	}
}

// FuzzParsePins reads one --address flag a line. Whatever parses is a
// lowercase name with valid, unzoned, unmapped addresses, and written back
// as flags it parses the same.
func FuzzParsePins(f *testing.F) {
	requireSeeds(f, "FuzzParsePins", 4)
	f.Fuzz(func(t *testing.T, text string) {
		pins, err := ParsePins(strings.Split(text, "\n"))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--address ") {
				t.Errorf("error %q does not name the flag", err)
			}
			return
		}
		var flags []string
		for name, r := range pins {
			if name != r.Name || name == "" || name != strings.ToLower(name) || strings.Contains(name, "=") {
				t.Errorf("pin %q: name %q", name, r.Name)
			}
			if len(r.Addrs) == 0 {
				t.Errorf("pin %q: no addresses", name)
			}
			var list []string
			for _, a := range r.Addrs {
				if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
					t.Errorf("pin %q: address %v", name, a)
				}
				list = append(list, a.String())
			}
			flags = append(flags, name+"="+strings.Join(list, ","))
		}
		again, err := ParsePins(flags)
		if err != nil {
			t.Fatalf("ParsePins(%q), written back as %q: %v", text, flags, err)
		}
		if !reflect.DeepEqual(again, pins) {
			t.Fatalf("ParsePins(%q):\nonce %+v\nback %+v", text, pins, again)
		}
	})
}
