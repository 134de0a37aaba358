package plans

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kiosk is an allowlist that admits SSH and NTP, so that plans built on it
// need no lint warning.
const kiosk = `
allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
}
`

// writePlan writes files (name to content) into a new directory and
// returns its path.
func writePlan(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustLoad loads the plan at path and fails on any diagnostic.
func mustLoad(t *testing.T, path string, opts Options) *Plan {
	t.Helper()
	p, diags := Load(path, opts)
	if len(diags) > 0 {
		t.Fatalf("Load(%s): unexpected diagnostics:\n%s", path, describe(diags))
	}
	return p
}

// host returns the plan's host name, failing if there is none.
func host(t *testing.T, p *Plan, name string) *Host {
	t.Helper()
	h := p.Host(name)
	if h == nil {
		t.Fatalf("no host %q in the plan", name)
	}
	return h
}

// peers lists the peers of entries, as written.
func peers(entries []*Entry) []string {
	var out []string
	for _, e := range entries {
		for _, p := range e.Peers {
			out = append(out, p.String())
		}
	}
	return out
}

// ports lists the ports of entries, as written.
func ports(entries []*Entry) []string {
	var out []string
	for _, e := range entries {
		for _, p := range e.Ports {
			out = append(out, p.String())
		}
	}
	return out
}

func TestVariablePrecedence(t *testing.T) {
	const site = `
variable "user" {
  default = "default"
}
` + kiosk + `
host "pi-01" {
  allowlists = ["kiosk"]
  user       = var.user
}
`
	varFile := func(user string) string { return "user = \"" + user + "\"\n" }
	for _, tt := range []struct {
		name     string
		environ  []string
		varFiles []string // contents
		vars     []string
		want     string
	}{
		{"default alone", nil, nil, nil, "default"},
		{"environment over default", []string{"PIWALL_VAR_user=env"}, nil, nil, "env"},
		{"environment of other variables ignored", []string{"PIWALL_VAR_other=x", "PIWALL_VAR_=y", "USER=root"}, nil, nil, "default"},
		{"var file over environment", []string{"PIWALL_VAR_user=env"}, []string{varFile("file")}, nil, "file"},
		{"later var file wins", nil, []string{varFile("file1"), varFile("file2")}, nil, "file2"},
		{"var over var file", []string{"PIWALL_VAR_user=env"}, []string{varFile("file")}, []string{"user=flag"}, "flag"},
		{"var over environment", []string{"PIWALL_VAR_user=env"}, nil, []string{"user=flag"}, "flag"},
		{"later var wins", nil, nil, []string{"user=flag1", "user=flag2"}, "flag2"},
		{"everything after the first equals sign", []string{"PIWALL_VAR_user=a=b"}, nil, nil, "a=b"},
		{"string taken as written, not as HCL", nil, nil, []string{`user=["x"]`}, `["x"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"site.hcl": site}
			var varFiles []string
			for i, src := range tt.varFiles {
				name := "vars" + strconv.Itoa(i) + ".piwallvars"
				files[name] = src
				varFiles = append(varFiles, name)
			}
			dir := writePlan(t, files)
			opts := Options{Environ: tt.environ, Vars: tt.vars}
			for _, name := range varFiles {
				opts.VarFiles = append(opts.VarFiles, filepath.Join(dir, name))
			}
			p := mustLoad(t, filepath.Join(dir, "site.hcl"), opts)
			if got := host(t, p, "pi-01").Connection.User; got == nil || got.V != tt.want {
				t.Errorf("user = %v, want %q", got, tt.want)
			}
		})
	}
}

func TestTypedVariables(t *testing.T) {
	const site = `
variable "admin_nets" {
  type    = list(string)
  default = ["192.168.1.0/24"]
}

variable "ssh_port" {
  type    = number
  default = 22
}

variable "log" {
  type    = bool
  default = false
}

allowlist "kiosk" {
  inbound {
    from  = var.admin_nets
    ports = ["tcp/${var.ssh_port}"]
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
  log_drops = var.log
}

host "pi-01" {
  allowlists = ["kiosk"]
  port       = var.ssh_port
}
`
	for _, tt := range []struct {
		name    string
		environ []string
		varFile string
		vars    []string
		nets    []string
		port    int
		log     bool
	}{
		{"defaults", nil, "", nil, []string{"192.168.1.0/24"}, 22, false},
		{"list from --var", nil, "", []string{`admin_nets=["10.0.0.0/8", "fd00::/8"]`}, []string{"10.0.0.0/8", "fd00::/8"}, 22, false},
		{"list, number and bool from --var", nil, "", []string{`admin_nets=["10.1.0.0/16"]`, "ssh_port=2222", "log=true"},
			[]string{"10.1.0.0/16"}, 2222, true},
		{"list from the environment", []string{`PIWALL_VAR_admin_nets=["10.2.0.0/16"]`, "PIWALL_VAR_ssh_port=2200"}, "", nil,
			[]string{"10.2.0.0/16"}, 2200, false},
		{"list from a var file", nil, "admin_nets = [\"10.3.0.0/16\", \"10.4.0.0/16\"]\nlog = true\n", nil,
			[]string{"10.3.0.0/16", "10.4.0.0/16"}, 22, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := writePlan(t, map[string]string{"site.hcl": site, "lab.vars": tt.varFile})
			opts := Options{Environ: tt.environ, Vars: tt.vars}
			if tt.varFile != "" {
				opts.VarFiles = []string{filepath.Join(dir, "lab.vars")}
			}
			p := mustLoad(t, filepath.Join(dir, "site.hcl"), opts)
			h := host(t, p, "pi-01")
			if got := peers(h.Policy.Inbound); !slices.Equal(got, tt.nets) {
				t.Errorf("inbound peers = %q, want %q", got, tt.nets)
			}
			if got, want := ports(h.Policy.Inbound), []string{"tcp/" + strconv.Itoa(tt.port)}; !slices.Equal(got, want) {
				t.Errorf("inbound ports = %q, want %q", got, want)
			}
			if h.Connection.Port == nil || h.Connection.Port.V != tt.port {
				t.Errorf("port = %v, want %d", h.Connection.Port, tt.port)
			}
			if h.Policy.LogDrops != tt.log {
				t.Errorf("log_drops = %v, want %v", h.Policy.LogDrops, tt.log)
			}
		})
	}
}

func TestLocals(t *testing.T) {
	for _, tt := range []struct {
		name  string
		src   string
		ports []string
	}{
		{"used before they are defined", `
locals {
  all  = concat(local.ssh, local.web)
  web  = [for p in local.web_numbers : "tcp/${p}"]
  ssh  = ["tcp/22"]
  web_numbers = [80, 443]
}`, []string{"tcp/22", "tcp/80", "tcp/443"}},
		{"across locals blocks", `
locals {
  all = concat(local.ssh, ["udp/53"])
}
locals {
  ssh = [local.first]
}
locals {
  first = "tcp/${var.port}"
}
variable "port" {
  default = "2222"
}`, []string{"tcp/2222", "udp/53"}},
		{"a local that is a function of a local", `
locals {
  all = distinct(flatten([local.x, local.x]))
  x   = ["tcp/22", ["tcp/80"]]
}`, []string{"tcp/22", "tcp/80"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src + `
allowlist "a" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = local.all
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
}

host "pi-01" {
  allowlists = ["a"]
  port       = 22
}
`
			dir := writePlan(t, map[string]string{"site.hcl": src})
			p, diags := Load(filepath.Join(dir, "site.hcl"), Options{})
			if diags.HasErrors() {
				t.Fatalf("unexpected errors:\n%s", describe(diags))
			}
			if got := ports(host(t, p, "pi-01").Policy.Inbound); !slices.Equal(got, tt.ports) {
				t.Errorf("inbound ports = %q, want %q", got, tt.ports)
			}
		})
	}
}

func TestFunctionsInPlan(t *testing.T) {
	const site = `
variable "site" {
  default = "10.20.0.0/16"
}

locals {
  admin   = cidrsubnet(var.site, 8, 1)
  servers = [for i in [10, 11] : cidrhost(cidrsubnet(var.site, 8, 2), i)]
  web     = [for p in [80, 443] : format("tcp/%d", p)]
}

allowlist "derived" {
  inbound {
    from  = [local.admin]
    ports = concat(["tcp/22"], local.web)
  }
  outbound {
    to    = flatten([local.servers, [cidrsubnets("192.0.2.0/24", 2, 2)]])
    ports = [format("%s/%d", "udp", 123)]
  }
}

host "pi-01" {
  address    = cidrhost(local.admin, 11)
  allowlists = ["derived"]
}
`
	p := mustLoad(t, writePlan(t, map[string]string{"site.hcl": site}), Options{})
	h := host(t, p, "pi-01")
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"address", []string{h.Address.V}, []string{"10.20.1.11"}},
		{"inbound peers", peers(h.Policy.Inbound), []string{"10.20.1.0/24"}},
		{"inbound ports", ports(h.Policy.Inbound), []string{"tcp/22", "tcp/80", "tcp/443"}},
		{"outbound peers", peers(h.Policy.Outbound), []string{"10.20.2.10", "10.20.2.11", "192.0.2.0/26", "192.0.2.64/26"}},
		{"outbound ports", ports(h.Policy.Outbound), []string{"udp/123"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestDirectoryPlan(t *testing.T) {
	dir := writePlan(t, map[string]string{
		"variables.hcl": `
variable "admin" {
  default = "192.168.1.0/24"
}`,
		"allowlists.hcl": `
allowlist "kiosk" {
  inbound {
    from  = [var.admin]
    ports = local.ssh
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
}`,
		"site.hcl": `
locals {
  ssh = ["tcp/22"]
}

host "pi-01" {
  groups = ["kiosks"]
}`,
		"groups.hcl": `
group "kiosks" {
  allowlists = ["kiosk"]
}`,
		// Neither a file of another kind nor a subdirectory is part of the plan.
		"README.md":       "not HCL at all {",
		"site.hcl.orig":   "host \"pi-02\" {}",
		"old/legacy.hcl":  "host \"pi-03\" {}",
		"lab.piwallvars":  "admin = \"10.0.0.0/8\"",
		"notes/notes.txt": "x",
	})
	p := mustLoad(t, dir, Options{})
	var names []string
	for _, h := range p.Hosts {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"pi-01"}) {
		t.Errorf("hosts = %q, want only pi-01", names)
	}
	if got := peers(host(t, p, "pi-01").Policy.Inbound); !slices.Equal(got, []string{"192.168.1.0/24"}) {
		t.Errorf("inbound peers = %q, want 192.168.1.0/24", got)
	}
	var files []string
	for name := range p.Files {
		files = append(files, filepath.Base(name))
	}
	slices.Sort(files)
	if want := []string{"allowlists.hcl", "groups.hcl", "site.hcl", "variables.hcl"}; !slices.Equal(files, want) {
		t.Errorf("Files = %q, want %q", files, want)
	}
	if d := p.Digest(); len(d) != 16 {
		t.Errorf("Digest() = %q, want 16 hex digits", d)
	}
}

func TestLoadWithoutPlan(t *testing.T) {
	for _, tt := range []struct {
		name string
		path func(t *testing.T) string
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "site.hcl") }},
		{"directory without .hcl files", func(t *testing.T) string { return writePlan(t, map[string]string{"site.txt": "x"}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := Load(tt.path(t), Options{})
			if p == nil {
				t.Fatal("Load returned a nil Plan")
			}
			if len(diags) != 1 || diags[0].Summary != "Cannot read plan" || !strings.Contains(diags[0].Detail, "A plan is a .hcl file or a directory of them") {
				t.Errorf("got\n%s\nwant one Cannot read plan error", describe(diags))
			}
		})
	}
}

func TestMergedAllowlists(t *testing.T) {
	const site = `
defaults {
  coexist = ["fail2ban"]
}

allowlist "a" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  keep_chains = ["DOCKER*", "f2b-*"]
  coexist     = ["docker", "fail2ban"]
  ping        = true
}

allowlist "b" {
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
  outbound {
    to    = ["dashboard.example.com"]
    ports = ["tcp/443"]
  }
  dns       = ["192.168.1.1"]
  log_drops = true
  dhcp      = false
  mdns      = true
}

allowlist "c" {
  inbound {
    from  = ["10.9.0.0/16"]
    ports = ["tcp/9100"]
  }
  keep_chains = ["f2b-*", "KUBE-*"]
  coexist     = ["tailscale", "docker"]
  ping        = true
  dns         = ["192.168.1.1"]
  mdns        = true
  mld         = false
}

allowlist "d" {
  outbound {
    to    = ["api.example.com"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["time.example.com"]
    ports = ["udp/123"]
  }
}

group "base" {
  allowlists = ["a", "b"]
}

group "extra" {
  allowlists = ["b", "c"]
}

host "pi-01" {
  groups     = ["base", "extra", "base"]
  allowlists = ["c", "d", "a"]
}

host "pi-02" {
  allowlists = ["d", "a"]
}
`
	p := mustLoad(t, writePlan(t, map[string]string{"site.hcl": site}), Options{})
	for _, tt := range []struct {
		host       string
		allowlists []string
		inbound    []string
		outbound   []string
		keep       []string
		coexist    []string
		dns        DNS
		ping, log  bool
		services   Keep
	}{
		{
			host:       "pi-01",
			allowlists: []string{"a", "b", "c", "d"},
			inbound:    []string{"a inbound 1", "c inbound 1"},
			outbound:   []string{"b outbound 1", "b outbound 2", "d outbound 1", "d outbound 2"},
			keep:       []string{"DOCKER*", "f2b-*", "KUBE-*"},
			coexist:    []string{"fail2ban", "docker", "tailscale"},
			dns:        DNS{Mode: "list", Resolvers: []netip.Addr{netip.MustParseAddr("192.168.1.1")}},
			ping:       true, log: true,
			services: Keep{DHCP: Off, MLD: Off, MDNS: On},
		},
		{
			host:       "pi-02",
			allowlists: []string{"d", "a"},
			inbound:    []string{"a inbound 1"},
			outbound:   []string{"d outbound 1", "d outbound 2"},
			keep:       []string{"DOCKER*", "f2b-*"},
			coexist:    []string{"fail2ban", "docker"},
			dns:        DNS{Mode: "system"},
			ping:       true, log: false,
		},
	} {
		t.Run(tt.host, func(t *testing.T) {
			pol := host(t, p, tt.host).Policy
			if !slices.Equal(pol.Allowlists, tt.allowlists) {
				t.Errorf("allowlists = %q, want %q, each once, in order", pol.Allowlists, tt.allowlists)
			}
			if got := entryNames(pol.Inbound); !slices.Equal(got, tt.inbound) {
				t.Errorf("inbound = %q, want %q", got, tt.inbound)
			}
			if got := entryNames(pol.Outbound); !slices.Equal(got, tt.outbound) {
				t.Errorf("outbound = %q, want %q", got, tt.outbound)
			}
			if !slices.Equal(pol.KeepChains, tt.keep) {
				t.Errorf("keep_chains = %q, want %q", pol.KeepChains, tt.keep)
			}
			if !slices.Equal(pol.Coexist, tt.coexist) {
				t.Errorf("coexist = %q, want %q: the defaults' first, then each allowlist's, each once", pol.Coexist, tt.coexist)
			}
			if !sameDNS(pol.DNS, tt.dns) {
				t.Errorf("dns = %+v, want %+v", pol.DNS, tt.dns)
			}
			if pol.Ping != tt.ping || pol.LogDrops != tt.log {
				t.Errorf("ping, log_drops = %v, %v; want %v, %v", pol.Ping, pol.LogDrops, tt.ping, tt.log)
			}
			if pol.Keep != tt.services {
				t.Errorf("dhcp, dhcpv6, mld, mdns = %+v, want %+v (Auto where no allowlist says)", pol.Keep, tt.services)
			}
		})
	}
}

// entryNames names entries as "allowlist direction index".
func entryNames(entries []*Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Allowlist+" "+string(e.Direction)+" "+strconv.Itoa(e.Index))
	}
	return out
}

func TestConnectionSettings(t *testing.T) {
	const site = `
defaults {
  user          = "pi"
  port          = 22
  identity_file = "~/.ssh/id_ed25519"
  sudo          = true
  jump          = "bastion.example.com"
  known_hosts   = "~/.ssh/known_hosts"
  revert_after  = "90s"
}
` + kiosk + `
host "pi-01" {
  address      = "pi-01.lan"
  allowlists   = ["kiosk"]
  user         = "admin"
  sudo         = false
  revert_after = "2m"
}

rollout {
  parallel     = 4
  canary       = 2
  batch        = 0
  max_failures = 1
}
`
	p := mustLoad(t, writePlan(t, map[string]string{"site.hcl": site}), Options{})
	d := p.Defaults
	if d.User.V != "pi" || d.Port.V != 22 || d.IdentityFile.V != "~/.ssh/id_ed25519" || !d.Sudo.V ||
		d.Jump.V != "bastion.example.com" || d.KnownHosts.V != "~/.ssh/known_hosts" || d.RevertAfter.V != 90*time.Second {
		t.Errorf("defaults = %+v, want every setting as written", d)
	}
	c := host(t, p, "pi-01").Connection
	if c.User.V != "admin" || c.Sudo.V || c.RevertAfter.V != 2*time.Minute || c.Port != nil || c.Jump != nil {
		t.Errorf("pi-01 connection = %+v, want user admin, sudo false, revert_after 2m and nothing else", c)
	}
	if want := (Rollout{Parallel: 4, Canary: 2, Batch: 0, MaxFailures: 1}); p.Rollout != want {
		t.Errorf("rollout = %+v, want %+v", p.Rollout, want)
	}
}

func TestDNSRefresh(t *testing.T) {
	for _, tc := range []struct {
		name            string
		defaults, host  string
		want            time.Duration
		wantDiagnostics string
	}{
		{name: "not written", want: DefaultDNSRefresh},
		{name: "in defaults", defaults: `dns_refresh = "20s"`, want: 20 * time.Second},
		{name: "the host's own wins", defaults: `dns_refresh = "20s"`, host: `dns_refresh = "1h"`, want: time.Hour},
		{name: "off", host: `dns_refresh = "0"`, want: 0},
		{name: "too often", host: `dns_refresh = "2s"`, wantDiagnostics: "Invalid dns_refresh"},
		{name: "not a duration", defaults: `dns_refresh = "often"`, wantDiagnostics: "Invalid dns_refresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := "defaults {\n" + tc.defaults + "\n}\n" + kiosk + "host \"pi-01\" {\n  allowlists = [\"kiosk\"]\n" + tc.host + "\n}\n"
			dir := writePlan(t, map[string]string{"site.hcl": site})
			if tc.wantDiagnostics != "" {
				_, diags := Load(dir, Options{})
				if got := describe(diags); !strings.Contains(got, tc.wantDiagnostics) {
					t.Errorf("diagnostics %q, want %q", got, tc.wantDiagnostics)
				}
				return
			}
			if got := host(t, mustLoad(t, dir, Options{}), "pi-01").Policy.DNSRefresh; got != tc.want {
				t.Errorf("dns_refresh = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestExpectBlocked(t *testing.T) {
	site := `
allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["api.example.com"]
    ports = ["tcp/443", "udp/123"]
  }
  expect_blocked {
    to    = ["blocked.example.com", "192.0.2.0/24"]
    ports = ["tcp/443"]
  }
}

allowlist "more" {
  expect_blocked {
    to = ["203.0.113.9"]
  }
  expect_blocked {
    to    = ["api.example.com"]
    ports = ["tcp/80"]
  }
}

host "pi-01" {
  address    = "192.168.1.11"
  allowlists = ["kiosk", "more"]
}
`
	p := mustLoad(t, writePlan(t, map[string]string{"site.hcl": site}), Options{})
	pol := host(t, p, "pi-01").Policy
	if got, want := entryNames(pol.ExpectBlocked), []string{"kiosk expect_blocked 1", "more expect_blocked 1", "more expect_blocked 2"}; !slices.Equal(got, want) {
		t.Errorf("expect_blocked = %q, want %q", got, want)
	}
	if got, want := peers(pol.ExpectBlocked), []string{"blocked.example.com", "192.0.2.0/24", "203.0.113.9", "api.example.com"}; !slices.Equal(got, want) {
		t.Errorf("expect_blocked peers = %q, want %q", got, want)
	}
	if got, want := ports(pol.ExpectBlocked), []string{"tcp/443", "tcp/80"}; !slices.Equal(got, want) {
		t.Errorf("expect_blocked ports = %q, want %q", got, want)
	}
	if got, want := entryNames(pol.Outbound), []string{"kiosk outbound 1"}; !slices.Equal(got, want) {
		t.Errorf("outbound = %q, want %q: expect_blocked opens nothing", got, want)
	}
}
