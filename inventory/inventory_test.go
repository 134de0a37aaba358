package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/plans"
)

// The inventory tests build plans with plans.Load from .hcl files written
// to a temporary directory, as the operator would write them:
//
//	go test ./inventory

// allowlistHCL gives every host of the test plans an allowlist, so that
// each plan is valid on its own.
const allowlistHCL = `
allowlist "base" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
}
`

// loadPlan writes src to a temporary site.hcl and loads it; any error
// diagnostic fails the test.
func loadPlan(t *testing.T, src string) *plans.Plan {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := plans.Load(path, plans.Options{})
	if diags.HasErrors() {
		t.Fatalf("plans.Load:\n%s\n%s", src, diags.Error())
	}
	return p
}

func mustTargets(t *testing.T, p *plans.Plan, env Env) []Target {
	t.Helper()
	targets, err := Targets(p, env)
	if err != nil {
		t.Fatal(err)
	}
	return targets
}

// testEnv is the operator's machine of the tests: home /home/op, user op.
func testEnv(t *testing.T, sshConfig string) Env {
	t.Helper()
	env := Env{Home: "/home/op", LocalUser: "op"}
	if sshConfig != "" {
		env.SSHConfig = mustParseSSHConfig(t, sshConfig)
	}
	return env
}

// opensshDefaults is the target of host pi-01 at 10.0.0.11 when nothing
// but OpenSSH's defaults and piwall's own apply.
func opensshDefaults() Target {
	return Target{
		Label:   "pi-01",
		Address: "10.0.0.11",
		Port:    22,
		User:    "op",
		IdentityFiles: []string{
			"/home/op/.ssh/id_rsa", "/home/op/.ssh/id_ecdsa", "/home/op/.ssh/id_ecdsa_sk", "/home/op/.ssh/id_ed25519",
			"/home/op/.ssh/id_ed25519_sk", "/home/op/.ssh/id_xmss", "/home/op/.ssh/id_dsa",
		},
		UseAgent:              true,
		KnownHosts:            []string{"/home/op/.ssh/known_hosts", "/home/op/.ssh/known_hosts2"},
		GlobalKnownHosts:      []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"},
		StrictHostKeyChecking: "ask",
		Sudo:                  true,
		RevertAfter:           60 * time.Second,
	}
}

func TestTargetsPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		defaults  string // the body of the defaults block; none when empty
		host      string // more attributes of host "pi-01", after address = "10.0.0.11"
		sshConfig string
		want      func(*Target) // applied to opensshDefaults()
	}{
		{
			name: "nothing set: OpenSSH defaults",
			want: func(*Target) {},
		},

		// user
		{
			name:      "user from the host block over defaults and ssh config",
			defaults:  `user = "pi"`,
			host:      `user = "admin"`,
			sshConfig: "Host 10.0.0.11\n  User cfg\n",
			want:      func(t *Target) { t.User = "admin" },
		},
		{
			name:      "user from defaults over ssh config",
			defaults:  `user = "pi"`,
			sshConfig: "Host 10.0.0.11\n  User cfg\n",
			want:      func(t *Target) { t.User = "pi" },
		},
		{
			name:      "user from ssh config for the address",
			sshConfig: "Host 10.0.0.*\n  User cfg\n",
			want:      func(t *Target) { t.User = "cfg" },
		},
		{
			name:      "ssh config for the label does not count",
			sshConfig: "Host pi-01\n  User cfg\n  Port 2222\n  HostName elsewhere\n",
			want:      func(*Target) {},
		},

		// port
		{
			name:      "port from the host block over defaults and ssh config",
			defaults:  `port = 2200`,
			host:      `port = 2222`,
			sshConfig: "Host 10.0.0.11\n  Port 2022\n",
			want:      func(t *Target) { t.Port = 2222 },
		},
		{
			name:      "port from defaults over ssh config",
			defaults:  `port = 2200`,
			sshConfig: "Host 10.0.0.11\n  Port 2022\n",
			want:      func(t *Target) { t.Port = 2200 },
		},
		{
			name:      "port from ssh config",
			sshConfig: "Host 10.0.0.11\n  Port 2022\n",
			want:      func(t *Target) { t.Port = 2022 },
		},
		{
			name:      "port from ssh config as a service name",
			sshConfig: "Host 10.0.0.11\n  Port ssh\n",
			want:      func(*Target) {},
		},

		// HostName
		{
			name:      "hostname from ssh config for the address",
			sshConfig: "Host 10.0.0.11\n  HostName pi-01.mgmt.example.com\n",
			want:      func(t *Target) { t.Address = "pi-01.mgmt.example.com" },
		},

		// identity files
		{
			name:      "identity file from the host block disables the agent",
			defaults:  `identity_file = "~/.ssh/fleet"`,
			host:      `identity_file = "~/.ssh/pi-01"`,
			sshConfig: "Host 10.0.0.11\n  IdentityFile ~/.ssh/cfg\n",
			want: func(t *Target) {
				t.IdentityFiles, t.UseAgent = []string{"/home/op/.ssh/pi-01"}, false
			},
		},
		{
			name:      "identity file from defaults disables the agent",
			defaults:  `identity_file = "/etc/piwall/key"`,
			sshConfig: "Host 10.0.0.11\n  IdentityFile ~/.ssh/cfg\n",
			want: func(t *Target) {
				t.IdentityFiles, t.UseAgent = []string{"/etc/piwall/key"}, false
			},
		},
		{
			name:      "identity files from ssh config accumulate and keep the agent",
			sshConfig: "Host 10.0.0.11\n  IdentityFile ~/.ssh/pi\nHost *\n  IdentityFile ~/.ssh/id_ed25519\n",
			want: func(t *Target) {
				t.IdentityFiles = []string{"/home/op/.ssh/pi", "/home/op/.ssh/id_ed25519"}
			},
		},

		// jump
		{
			name:      "jump from the host block over defaults and ssh config",
			defaults:  `jump = "bastion.example.com"`,
			host:      `jump = "admin@inner:2222"`,
			sshConfig: "Host 10.0.0.11\n  ProxyJump cfg-bastion\n",
			want:      func(t *Target) { t.Jump = "admin@inner:2222" },
		},
		{
			name:      "jump from defaults over ssh config",
			defaults:  `jump = "bastion.example.com"`,
			sshConfig: "Host 10.0.0.11\n  ProxyJump cfg-bastion\n",
			want:      func(t *Target) { t.Jump = "bastion.example.com" },
		},
		{
			name:      "jump none in the host block overrides the defaults",
			defaults:  `jump = "bastion.example.com"`,
			host:      `jump = "none"`,
			sshConfig: "Host 10.0.0.11\n  ProxyJump cfg-bastion\n",
			want:      func(*Target) {},
		},
		{
			name:      "proxy jump from ssh config",
			sshConfig: "Host 10.0.0.*\n  ProxyJump bastion,inner\n",
			want:      func(t *Target) { t.Jump = "bastion,inner" },
		},
		{
			name:      "proxy jump none in ssh config wins over a later one",
			sshConfig: "Host 10.0.0.11\n  ProxyJump none\nHost *\n  ProxyJump bastion\n",
			want:      func(*Target) {},
		},

		// known hosts
		{
			name:      "known hosts from the host block over defaults and ssh config",
			defaults:  `known_hosts = "~/.ssh/fleet_hosts"`,
			host:      `known_hosts = "~/.ssh/pi_hosts"`,
			sshConfig: "Host 10.0.0.11\n  UserKnownHostsFile ~/.ssh/cfg_hosts\n",
			want:      func(t *Target) { t.KnownHosts = []string{"/home/op/.ssh/pi_hosts"} },
		},
		{
			name:      "known hosts from defaults over ssh config",
			defaults:  `known_hosts = "/etc/piwall/known_hosts"`,
			sshConfig: "Host 10.0.0.11\n  UserKnownHostsFile ~/.ssh/cfg_hosts\n",
			want:      func(t *Target) { t.KnownHosts = []string{"/etc/piwall/known_hosts"} },
		},
		{
			name:      "several known hosts files from ssh config",
			sshConfig: "Host 10.0.0.11\n  UserKnownHostsFile ~/.ssh/fleet_hosts \"/mnt/shared keys/hosts\" /etc/ssh/pi_hosts\nHost *\n  UserKnownHostsFile ~/.ssh/other\n",
			want: func(t *Target) {
				t.KnownHosts = []string{"/home/op/.ssh/fleet_hosts", "/mnt/shared keys/hosts", "/etc/ssh/pi_hosts"}
			},
		},

		// sudo and revert_after
		{
			name:     "sudo off in defaults",
			defaults: `sudo = false`,
			want:     func(t *Target) { t.Sudo = false },
		},
		{
			name:     "sudo on in the host block over defaults",
			defaults: `sudo = false`,
			host:     `sudo = true`,
			want:     func(*Target) {},
		},
		{
			name:     "revert after from defaults",
			defaults: `revert_after = "90s"`,
			want:     func(t *Target) { t.RevertAfter = 90 * time.Second },
		},
		{
			name:     "revert after from the host block over defaults",
			defaults: `revert_after = "90s"`,
			host:     `revert_after = "2m"`,
			want:     func(t *Target) { t.RevertAfter = 2 * time.Minute },
		},

		// ~
		{
			name:     "tilde of another user is left as written",
			defaults: `identity_file = "~root/.ssh/key"`,
			want: func(t *Target) {
				t.IdentityFiles, t.UseAgent = []string{"~root/.ssh/key"}, false
			},
		},
		{
			name:      "tilde in ssh config files is the home directory",
			sshConfig: "Host 10.0.0.11\n  IdentityFile ~/keys/pi\n  UserKnownHostsFile ~/known\n",
			want: func(t *Target) {
				t.IdentityFiles, t.KnownHosts = []string{"/home/op/keys/pi"}, []string{"/home/op/known"}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := allowlistHCL
			if tc.defaults != "" {
				src += "defaults {\n  " + tc.defaults + "\n}\n"
			}
			src += "host \"pi-01\" {\n  address = \"10.0.0.11\"\n  allowlists = [\"base\"]\n  " + tc.host + "\n}\n"
			p := loadPlan(t, src)
			targets, err := Targets(p, testEnv(t, tc.sshConfig))
			if err != nil {
				t.Fatal(err)
			}
			if len(targets) != 1 {
				t.Fatalf("got %d targets, want 1", len(targets))
			}
			got := targets[0]
			if got.Host != p.Host("pi-01") {
				t.Errorf("Host = %v, want the plan's host pi-01", got.Host)
			}
			got.Host = nil
			got.Hops = nil // TestTargetsJumpHops checks them
			want := opensshDefaults()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestTargetsJumpHops checks that each ProxyJump host is resolved through
// ssh_config with its own address, user, port, keys and known_hosts, as
// ssh -J does: the user and port the jump names win; the first hop's own
// ProxyJump or ProxyCommand apply, the later hops' give way to the chain.
func TestTargetsJumpHops(t *testing.T) {
	const sshConfig = `Host pi-*
  ProxyJump ops@bastion,inner:2200
Host bastion
  HostName Bastion.Example.com
  User admin
  Port 2222
  IdentityFile ~/.ssh/bastion
  UserKnownHostsFile ~/.ssh/bastion_hosts
  ProxyJump outer
Host inner
  HostName 10.1.0.1
  ProxyCommand never used
  IdentitiesOnly yes
Host outer
  ProxyCommand nc -X connect -x proxy.lan:3128 %h %p
Host loop-0*
  ProxyJump loop-hop
Host loop-hop
  ProxyJump loop-01
`
	env := testEnv(t, sshConfig)
	tg, err := env.target("pi-01", SSHOverrides{})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Jump != "ops@bastion,inner:2200" || len(tg.Hops) != 2 {
		t.Fatalf("jump %q with %d hops, want ops@bastion,inner:2200 with 2", tg.Jump, len(tg.Hops))
	}
	b, in := tg.Hops[0], tg.Hops[1]
	if b.Label != "bastion" || b.Address != "bastion.example.com" || b.User != "ops" || b.Port != 2222 ||
		!reflect.DeepEqual(b.IdentityFiles, []string{"/home/op/.ssh/bastion"}) || !reflect.DeepEqual(b.KnownHosts, []string{"/home/op/.ssh/bastion_hosts"}) {
		t.Errorf("first hop: %+v; want bastion.example.com:2222 as ops (the jump's user), its own key and known_hosts", b)
	}
	if b.Jump != "outer" || len(b.Hops) != 1 || b.Hops[0].ProxyCommand != "nc -X connect -x proxy.lan:3128 outer 22" {
		t.Errorf("first hop's own jump: %q, hops %+v; want outer, reached by its ProxyCommand", b.Jump, b.Hops)
	}
	if in.Address != "10.1.0.1" || in.Port != 2200 || in.User != "op" || in.ProxyCommand != "" || in.Jump != "" || !in.IdentitiesOnly {
		t.Errorf("second hop: %+v; want 10.1.0.1:2200 as op, IdentitiesOnly, no proxy of its own", in)
	}
	if _, err := env.target("loop-01", SSHOverrides{}); err == nil || !strings.Contains(err.Error(), "ProxyJump loop: loop-01 -> loop-hop -> loop-01") {
		t.Errorf("a loop: got %v, want a ProxyJump loop error", err)
	}
	tg, err = env.target("pi-02", SSHOverrides{ProxyJump: "none"})
	if err != nil || tg.Jump != "" || tg.Hops != nil || tg.ProxyCommand != "" {
		t.Errorf("jump none: %+v, %v; want no jump", tg, err)
	}
	// The plan's jump is ssh's -J: the jump host, dialled with ssh_config
	// alone, may be the destination itself (a plan whose defaults jump
	// through one of its own hosts), as ssh -J X X goes through X to X.
	tg, err = env.target("10.0.0.12", SSHOverrides{ProxyJump: "pi@10.0.0.12"})
	if err != nil || len(tg.Hops) != 1 || tg.Hops[0].Address != "10.0.0.12" || tg.Hops[0].User != "pi" || tg.Hops[0].Hops != nil {
		t.Errorf("-J to the destination itself: %+v, %v; want one hop, 10.0.0.12 as pi", tg, err)
	}
}

// TestTargetsConnectionSettings checks what a target takes of ssh_config
// beyond address, user and port, expanded as the dialer uses it.
func TestTargetsConnectionSettings(t *testing.T) {
	env := testEnv(t, `Host pi-01
  HostName Pi-01.Shop.LAN
  IdentityAgent ~/.ssh/agent-%h.sock
  IdentitiesOnly yes
  CertificateFile ~/.ssh/%n-cert.pub
  HostKeyAlias Kiosk-01
  GlobalKnownHostsFile ~/.ssh/global_hosts /etc/ssh/ssh_known_hosts
  HashKnownHosts yes
  StrictHostKeyChecking accept-new
  ConnectTimeout 5
  ProxyCommand nc %h %p %r %n %%
Host pi-02
  IdentityAgent none
  ProxyCommand none
  ProxyJump bastion
`)
	got, err := env.target("pi-01", SSHOverrides{User: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	want := Target{
		Label: "pi-01", Address: "pi-01.shop.lan", Port: 22, User: "admin",
		IdentityFiles: opensshDefaults().IdentityFiles, UseAgent: true,
		IdentityAgent: "/home/op/.ssh/agent-pi-01.shop.lan.sock", IdentitiesOnly: true,
		CertificateFiles: []string{"/home/op/.ssh/pi-01-cert.pub"},
		ProxyCommand:     "nc pi-01.shop.lan 22 admin pi-01 %", HostKeyAlias: "kiosk-01",
		KnownHosts: opensshDefaults().KnownHosts, GlobalKnownHosts: []string{"/home/op/.ssh/global_hosts", "/etc/ssh/ssh_known_hosts"},
		HashKnownHosts: true, StrictHostKeyChecking: "accept-new", ConnectTimeout: 5 * time.Second,
		Sudo: true, RevertAfter: 60 * time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	got, err = env.target("pi-02", SSHOverrides{})
	if err != nil || got.UseAgent || got.IdentityAgent != "" || got.ProxyCommand != "" || got.Jump != "" || got.Hops != nil {
		t.Errorf("IdentityAgent none, ProxyCommand none before a ProxyJump: got %+v, %v; want no agent, no proxy", got, err)
	}
}

// TestTargetsSSHConfigErrors names the host, the file and the line.
func TestTargetsSSHConfigErrors(t *testing.T) {
	p := loadPlan(t, allowlistHCL+`
host "pi-01" {
  address    = "10.0.0.11"
  allowlists = ["base"]
}
`)
	for _, tc := range []struct{ config, want string }{
		{"Host 10.0.0.*\n  BindAddress 10.0.0.1\n", "host pi-01: ssh_config:2: bindaddress 10.0.0.1 is not supported"},
		{"Match host 10.0.0.11 exec true\n  User x\n", "host pi-01: ssh_config:1: Match exec is not supported"},
		{"Host *\n  IdentityFile ~/.ssh/%j\n", "host pi-01: IdentityFile ~/.ssh/%j: \"/home/op/.ssh/%j\": unknown token %j"},
		{"Host 10.0.0.11\n  ProxyJump 10.0.0.11\n", "host pi-01: ProxyJump loop: 10.0.0.11 -> 10.0.0.11"},
	} {
		_, err := Targets(p, testEnv(t, tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ssh_config %q: got %v, want an error saying %q", tc.config, err, tc.want)
		}
	}
}

func TestTargetsPlanOrderAndAddress(t *testing.T) {
	p := loadPlan(t, allowlistHCL+`
host "pi-03" {
  allowlists = ["base"]
}
host "pi-01" {
  address    = "10.0.0.11"
  allowlists = ["base"]
}
host "kiosk" {
  address    = "fd00::21"
  allowlists = ["base"]
}
`)
	targets, err := Targets(p, testEnv(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range targets {
		got = append(got, tg.Label+"="+tg.Addr())
	}
	want := []string{"pi-03=pi-03:22", "pi-01=10.0.0.11:22", "kiosk=[fd00::21]:22"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets (label=addr) = %q, want %q (plan order; the address defaults to the label)", got, want)
	}
}

func TestFromAddress(t *testing.T) {
	const sshConfig = "Host pi-03\n  HostName 10.0.0.13\n  User admin\n  Port 2022\n  IdentityFile ~/.ssh/pi\n"
	tests := []struct {
		name, spec          string
		address, user, port string
	}{
		{"host", "192.0.2.11", "192.0.2.11", "op", "22"},
		{"user at host", "pi@192.0.2.11", "192.0.2.11", "pi", "22"},
		{"host and port", "pi-01.lan:2222", "pi-01.lan", "op", "2222"},
		{"user, IPv6 address and port", "pi@[fd00::1]:2222", "fd00::1", "pi", "2222"},
		{"IPv6 address in brackets", "[fd00::1]", "fd00::1", "op", "22"},
		{"bare IPv6 address", "fd00::1", "fd00::1", "op", "22"},
		{"highest port", "pi-01:65535", "pi-01", "op", "65535"},
		{"ssh config for the address", "pi-03", "10.0.0.13", "admin", "2022"},
		{"user and port given win over ssh config", "root@pi-03:22", "10.0.0.13", "root", "22"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromAddress(tc.spec, testEnv(t, sshConfig))
			if err != nil {
				t.Fatalf("FromAddress(%q): %v", tc.spec, err)
			}
			if got.Label != tc.spec || got.Address != tc.address || got.User != tc.user || strconv.Itoa(got.Port) != tc.port {
				t.Errorf("FromAddress(%q) = label %q, %s@%s port %d; want label %q, %s@%s port %s",
					tc.spec, got.Label, got.User, got.Address, got.Port, tc.spec, tc.user, tc.address, tc.port)
			}
			if got.Host != nil || !got.Sudo || got.RevertAfter != plans.DefaultRevertAfter || !got.UseAgent {
				t.Errorf("FromAddress(%q) = %+v, want no plan host, sudo, the default revert_after and the agent", tc.spec, got)
			}
		})
	}
}

func TestFromAddressErrors(t *testing.T) {
	for _, spec := range []string{
		"", "user@", "@host", "host:0", "host:x", "host:65536", "host:-1", "host:", "a b", "pi@a b", "a/b", "a@b@c", "[]", "[]:22",
	} {
		t.Run(spec, func(t *testing.T) {
			got, err := FromAddress(spec, testEnv(t, ""))
			if err == nil {
				t.Fatalf("FromAddress(%q) = %+v, want an error", spec, got)
			}
			if !strings.Contains(err.Error(), strconv.Quote(spec)) {
				t.Errorf("FromAddress(%q): error %q does not quote what was given", spec, err)
			}
		})
	}
}

// selectPlan is a fleet for --limit: kiosks pi-01..pi-03 (pi-03 also in
// lab) and a gateway.
const selectPlan = allowlistHCL + `
group "kiosk" {
  allowlists = ["base"]
}
group "lab" {
  allowlists = ["base"]
}
group "gateway" {
  allowlists = ["base"]
}
host "pi-01" {
  groups = ["kiosk"]
}
host "pi-02" {
  groups = ["kiosk"]
}
host "pi-03" {
  groups = ["kiosk", "lab"]
}
host "gw-01" {
  groups = ["gateway"]
}
`

func TestSelect(t *testing.T) {
	targets := mustTargets(t, loadPlan(t, selectPlan), testEnv(t, ""))
	tests := []struct {
		name, limit string
		want        []string // labels, in order
	}{
		{"empty keeps all", "", []string{"pi-01", "pi-02", "pi-03", "gw-01"}},
		{"blank keeps all", "  ", []string{"pi-01", "pi-02", "pi-03", "gw-01"}},
		{"one label", "pi-02", []string{"pi-02"}},
		{"two labels", "gw-01,pi-01", []string{"pi-01", "gw-01"}},
		{"spaces around patterns", " pi-01 , gw-01 ", []string{"pi-01", "gw-01"}},
		{"empty items are skipped", "pi-01,,", []string{"pi-01"}},
		{"group", "kiosk", []string{"pi-01", "pi-02", "pi-03"}},
		{"second group of a host", "lab", []string{"pi-03"}},
		{"glob on labels", "pi-0*", []string{"pi-01", "pi-02", "pi-03"}},
		{"question mark on labels", "??-01", []string{"pi-01", "gw-01"}},
		{"character class on labels", "pi-0[13]", []string{"pi-01", "pi-03"}},
		{"glob on groups", "gate*", []string{"gw-01"}},
		{"exclusion alone keeps the rest", "!pi-03", []string{"pi-01", "pi-02", "gw-01"}},
		{"group minus a host", "kiosk,!pi-03", []string{"pi-01", "pi-02"}},
		{"exclusion first", "!pi-03,kiosk", []string{"pi-01", "pi-02"}},
		{"exclusion of a group", "!kiosk", []string{"gw-01"}},
		{"exclusion by glob", "kiosk,!pi-0[12]", []string{"pi-03"}},
		{"host named twice kept once", "pi-01,kiosk,pi-01", []string{"pi-01", "pi-02", "pi-03"}},
		{"order is the plan's", "gw-01,pi-03,pi-01", []string{"pi-01", "pi-03", "gw-01"}},
		{"everything excluded", "kiosk,!kiosk", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(targets, tc.limit)
			if err != nil {
				t.Fatalf("Select(%q): %v", tc.limit, err)
			}
			if labels := labelsOf(got); !reflect.DeepEqual(labels, tc.want) {
				t.Errorf("Select(%q) = %q, want %q", tc.limit, labels, tc.want)
			}
		})
	}
}

func TestSelectErrors(t *testing.T) {
	targets := mustTargets(t, loadPlan(t, selectPlan), testEnv(t, ""))
	tests := []struct {
		name, limit, msg string
	}{
		{"label that names nothing", "pi-9", `"pi-9" names no host or group`},
		{"one of several names nothing", "pi-01,kioks", `"kioks" names no host or group`},
		{"glob that names nothing", "web-*", `"web-*" names no host or group`},
		{"exclusion that names nothing", "kiosk,!pi-3", `"!pi-3" names no host or group`},
		{"bad glob", "pi-[", `bad pattern "pi-["`},
		{"bad glob in an exclusion", "kiosk,!pi-[0", `bad pattern "!pi-[0"`},
		{"bad glob after a good pattern", "pi-01,\\", `bad pattern "\\"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(targets, tc.limit)
			if err == nil {
				t.Fatalf("Select(%q) = %q, want an error", tc.limit, labelsOf(got))
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "--limit") {
				t.Errorf("Select(%q): got error %q, want one saying --limit ... %s", tc.limit, err, tc.msg)
			}
		})
	}
}

func TestSelectAddressTargets(t *testing.T) {
	var targets []Target
	for _, spec := range []string{"192.0.2.11", "pi@192.0.2.12"} {
		tg, err := FromAddress(spec, testEnv(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	got, err := Select(targets, "192.0.2.1?")
	if err != nil {
		t.Fatal(err)
	}
	if labels := labelsOf(got); !reflect.DeepEqual(labels, []string{"192.0.2.11"}) {
		t.Errorf("Select(192.0.2.1?) = %q, want [192.0.2.11] (targets without a plan match by label only)", labels)
	}
}

func labelsOf(targets []Target) []string {
	var out []string
	for _, t := range targets {
		out = append(out, t.Label)
	}
	return out
}

func TestLookup(t *testing.T) {
	p := loadPlan(t, allowlistHCL+`
host "pi-01" {
  address    = "192.0.2.11"
  allowlists = ["base"]
}
host "pi-02" {
  address    = "192.0.2.12"
  allowlists = ["base"]
}
`)
	env := testEnv(t, "")
	fromPlan := mustTargets(t, p, env)
	tests := []struct {
		name    string
		hosts   []string
		want    []string // label@address
		wantErr string
	}{
		{"labels of the plan", []string{"pi-02", "pi-01"}, []string{"pi-02@192.0.2.12", "pi-01@192.0.2.11"}, ""},
		{"an address the plan does not name", []string{"pi@192.0.2.99:2222"}, []string{"pi@192.0.2.99:2222@192.0.2.99"}, ""},
		{"a label and an address", []string{"pi-01", "192.0.2.50"}, []string{"pi-01@192.0.2.11", "192.0.2.50@192.0.2.50"}, ""},
		{"neither", []string{"pi-01", "bad host"}, nil, `"bad host" is neither a host of the plan`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Lookup(tt.hosts, fromPlan, env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Lookup(%q) error = %v, want %q", tt.hosts, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var labels []string
			for _, t := range got {
				labels = append(labels, t.Label+"@"+t.Address)
			}
			if strings.Join(labels, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Lookup(%q) = %q, want %q", tt.hosts, labels, tt.want)
			}
		})
	}
}
