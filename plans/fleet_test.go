package plans

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// summary is a host as the fleet tests compare it: name, address, user,
// port, identity file and groups.
func summary(h *Host) string {
	s := fmt.Sprintf("%s %s", h.Name, h.Address.V)
	if c := h.Connection; c.User != nil {
		s += " user=" + c.User.V
	}
	if c := h.Connection; c.Port != nil {
		s += fmt.Sprintf(" port=%d", c.Port.V)
	}
	if c := h.Connection; c.IdentityFile != nil {
		s += " key=" + c.IdentityFile.V
	}
	var groups []string
	for _, g := range h.Groups {
		groups = append(groups, g.V)
	}
	return s + " groups=" + strings.Join(groups, ",") + " allowlists=" + strings.Join(h.Policy.Allowlists, ",")
}

func summaries(p *Plan) []string {
	var out []string
	for _, h := range p.Hosts {
		out = append(out, summary(h))
	}
	return out
}

// kiosk2222 is kiosk with SSH on port 2222 too.
var kiosk2222 = strings.Replace(kiosk, `ports = ["tcp/22"]`, `ports = ["tcp/22", "tcp/2222"]`, 1)

func TestForEach(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"rows of a CSV, named by a column", map[string]string{
			"kiosks.csv": "name,address,user\nkiosk-01,192.168.1.11,pi\nkiosk-02,192.168.1.12,admin\n",
			"site.hcl": kiosk + `
host "kiosk" {
  for_each   = csvdecode(file("kiosks.csv"))
  name       = each.value.name
  address    = each.value.address
  user       = each.value.user
  allowlists = ["kiosk"]
}`}, []string{
			"kiosk-01 192.168.1.11 user=pi groups= allowlists=kiosk",
			"kiosk-02 192.168.1.12 user=admin groups= allowlists=kiosk",
		}},
		{"a map: LABEL-KEY", map[string]string{"site.hcl": kiosk + `
locals {
  shop = { "01" = "192.168.1.11", "02" = "192.168.1.12" }
}
group "kiosk" {
  allowlists = ["kiosk"]
}
host "shop" {
  for_each = local.shop
  address  = each.value
  groups   = ["kiosk"]
}`}, []string{
			"shop-01 192.168.1.11 groups=kiosk allowlists=kiosk",
			"shop-02 192.168.1.12 groups=kiosk allowlists=kiosk",
		}},
		{"a set of names: the address defaults to the name", map[string]string{"site.hcl": kiosk + `
host "pi" {
  for_each   = toset(["pi-a.lan", "pi-b.lan"])
  name       = each.key
  allowlists = ["kiosk"]
}`}, []string{
			"pi-a.lan pi-a.lan groups= allowlists=kiosk",
			"pi-b.lan pi-b.lan groups= allowlists=kiosk",
		}},
		{"a YAML list, and a JSON one", map[string]string{
			"fleet.yaml": "- {name: y-01, address: 10.0.0.1, port: 2222}\n- name: y-02\n  address: 10.0.0.2\n  port: 22\n",
			"fleet.json": `[{"name": "j-01", "address": "10.0.1.1"}]`,
			"site.hcl": kiosk2222 + `
host "y" {
  for_each   = yamldecode(file("fleet.yaml"))
  name       = each.value.name
  address    = each.value.address
  port       = each.value.port
  allowlists = ["kiosk"]
}
host "j" {
  for_each   = jsondecode(file("fleet.json"))
  name       = each.value.name
  address    = each.value.address
  allowlists = ["kiosk"]
}`}, []string{
			"y-01 10.0.0.1 port=2222 groups= allowlists=kiosk",
			"y-02 10.0.0.2 port=22 groups= allowlists=kiosk",
			"j-01 10.0.1.1 groups= allowlists=kiosk",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writePlan(t, tt.files)
			p := mustLoad(t, dir, Options{})
			if got := summaries(p); !slices.Equal(got, tt.want) {
				t.Errorf("hosts:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// The data files a plan reads are part of its sources: the digest changes
// with them, and diagnostics can show their lines.
func TestDataFilesInDigest(t *testing.T) {
	files := map[string]string{
		"kiosks.csv": "name,address\nkiosk-01,192.168.1.11\n",
		"site.hcl": kiosk + `
host "kiosk" {
  for_each   = csvdecode(file("kiosks.csv"))
  name       = each.value.name
  address    = each.value.address
  allowlists = ["kiosk"]
}`}
	p1 := mustLoad(t, writePlan(t, files), Options{})
	files["kiosks.csv"] = "name,address\nkiosk-01,192.168.1.12\n"
	dir := writePlan(t, files)
	p2 := mustLoad(t, dir, Options{})
	if p1.Digest() == p2.Digest() {
		t.Errorf("the digest did not change with the CSV")
	}
	if f := p2.Files[filepath.Join(dir, "kiosks.csv")]; f == nil || string(f.Bytes) != files["kiosks.csv"] {
		t.Errorf("the CSV is not among the plan's files: %v", f)
	}
}

var ansiblePlan = kiosk2222 + `
allowlist "printer" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22", "tcp/631"]
  }
  outbound {
    to    = ["ntp.example.com"]
    ports = ["udp/123"]
  }
}
group "kiosk" {
  allowlists = ["kiosk"]
}
group "printers" {
  allowlists = ["printer"]
}
ansible_inventory {
  path = "%s"
}
`

// The same inventory in INI and YAML: groups, children, ranges, group vars
// (a child's over its parent's over all's) and host vars over them.
const ansibleINI = `# the shop
ungrouped.lan

[kiosk]
pi-[01:03] ansible_user=kiosk
pi-04:2222 ansible_host=192.168.1.14 ansible_ssh_private_key_file="~/.ssh/pi 04"

[printers]
printer-01 ansible_host=192.168.1.50

[shop:children]
kiosk
printers

[shop:vars]
ansible_user=shop
ansible_port = 22

[all:vars]
ansible_user=pi
ansible_ssh_private_key_file=~/.ssh/fleet
`

const ansibleYAML = `all:
  vars:
    ansible_user: pi
    ansible_ssh_private_key_file: ~/.ssh/fleet
  hosts:
    ungrouped.lan:
  children:
    shop:
      vars:
        ansible_user: shop
        ansible_port: 22
      children:
        kiosk:
          hosts:
            pi-[01:03]:
              ansible_user: kiosk
            pi-04:
              ansible_host: 192.168.1.14
              ansible_port: 2222
              ansible_ssh_private_key_file: "~/.ssh/pi 04"
        printers:
          hosts:
            printer-01:
              ansible_host: 192.168.1.50
`

func TestAnsibleInventory(t *testing.T) {
	want := []string{
		"pi-01 pi-01 user=kiosk port=22 key=~/.ssh/fleet groups=shop,kiosk allowlists=kiosk",
		"pi-02 pi-02 user=kiosk port=22 key=~/.ssh/fleet groups=shop,kiosk allowlists=kiosk",
		"pi-03 pi-03 user=kiosk port=22 key=~/.ssh/fleet groups=shop,kiosk allowlists=kiosk",
		"pi-04 192.168.1.14 user=shop port=2222 key=~/.ssh/pi 04 groups=shop,kiosk allowlists=kiosk",
		"printer-01 192.168.1.50 user=shop port=22 key=~/.ssh/fleet groups=shop,printers allowlists=printer",
	}
	for _, tt := range []struct{ name, file, src string }{
		{"INI", "hosts.ini", ansibleINI},
		{"YAML", "hosts.yml", ansibleYAML},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// ungrouped.lan gets no allowlist: the groups attribute leaves
			// it out.
			plan := strings.Replace(fmt.Sprintf(ansiblePlan, tt.file), `path = "`+tt.file+`"`, `path = "`+tt.file+`"`+"\n  groups = [\"shop\"]", 1)
			dir := writePlan(t, map[string]string{"site.hcl": plan, tt.file: tt.src})
			p := mustLoad(t, dir, Options{})
			got := summaries(p)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("hosts:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
			if g := p.Group("shop"); g == nil || len(g.Allowlists) != 0 || g.DeclRange.Filename != filepath.Join(dir, tt.file) {
				t.Errorf("group shop: %+v, want a group of the inventory's, without allowlists", g)
			}
			h := p.Host("pi-04")
			if r := h.DeclRange; r.Filename != filepath.Join(dir, tt.file) || r.Start.Line < 2 {
				t.Errorf("pi-04 declared at %s, want its line in %s", r, tt.file)
			}
		})
	}
}

// group_vars and host_vars beside the inventory are read as Ansible reads
// them: all's, then a group's (a file, or a directory of them), under the
// inventory file's host variables, under host_vars.
func TestAnsibleVarsDirs(t *testing.T) {
	dir := writePlan(t, map[string]string{
		"site.hcl":                            fmt.Sprintf(ansiblePlan, "inventory/hosts.ini"),
		"inventory/hosts.ini":                 "[kiosk]\npi-01\npi-02 ansible_user=inifile\n\n[kiosk:vars]\nansible_port=22\n",
		"inventory/group_vars/all.yml":        "ansible_user: all\nansible_ssh_private_key_file: ~/.ssh/fleet\n",
		"inventory/group_vars/kiosk/main.yml": "---\nansible_port: 2222\n",
		"inventory/host_vars/pi-02.yaml":      "ansible_host: 192.168.1.12\nansible_user: hostvars\n",
	})
	p := mustLoad(t, dir, Options{})
	want := []string{
		"pi-01 pi-01 user=all port=2222 key=~/.ssh/fleet groups=kiosk allowlists=kiosk",
		"pi-02 192.168.1.12 user=hostvars port=2222 key=~/.ssh/fleet groups=kiosk allowlists=kiosk",
	}
	if got := summaries(p); !slices.Equal(got, want) {
		t.Errorf("hosts:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if r := p.Host("pi-02").Connection.User.Range; r.Filename != filepath.Join(dir, "inventory/host_vars/pi-02.yaml") || r.Start.Line != 2 {
		t.Errorf("pi-02's user comes from %s, want host_vars/pi-02.yaml:2", r)
	}
}
