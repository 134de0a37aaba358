// Package lab runs a fleet of real Raspberry Pi stand-ins on one Linux
// machine, for piwall's end-to-end tests and demo.
//
// # What a lab is
//
// Each Pi is a Linux network namespace with its own iptables tables, its own
// hostname, and its own Debian bookworm root file system (an overlay of one
// cached debootstrap with the Pi's private writable layer). It runs a real
// OpenSSH sshd, has a user pi with passwordless sudo and, like a fresh
// Raspberry Pi OS Lite, no iptables. An apt repository inside the lab lets a
// Pi install iptables, netfilter-persistent and iptables-persistent with no
// network.
//
// A bridge joins the Pis, the controller (the machine's root namespace, which
// plays the operator's laptop), a services namespace (dashboard, api and
// blocked on tcp/443, ntp on udp/123, and dnsmasq serving the .lab names with
// A, AAAA and a CNAME chain), and an intruder namespace whose address no plan
// admits. The addresses are fixed: see addr.go. Nothing routes out of the lab
// and the lab never touches the machine's own firewall.
//
// # Using it
//
// From a shell: `piwall-lab up`, then `ssh -F /var/lib/piwall-lab/ssh_config
// pi-01`, then `piwall-lab down`. From Go: Up and Down, or Start in a test.
// Both need root. Up clears whatever an earlier lab left behind first; Down
// leaves no namespace, link, mount, process or file of the lab on the machine.
//
// Programs that import this package can be started again in a role inside
// the lab (see helper.go): the lab needs no binary besides its user's own.
package lab
