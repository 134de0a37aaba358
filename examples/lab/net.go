//go:build linux

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
)

// node is one namespace on the lab bridge: a Pi, the services, the intruder.
type node struct {
	netns string // also the name of the host side of its veth
	addrs []netip.Addr
}

// bridgeBatch is the `ip -batch` that makes the bridge and joins every node's
// veth to it. The bridge does not hand its frames to the machine's own
// iptables (br_netfilter), so the lab works whatever the machine's firewall
// says, and the lab never changes that firewall.
func bridgeBatch(nodes []node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "link add %s type bridge\n", bridgeName)
	fmt.Fprintf(&b, "link set %s type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0\n", bridgeName)
	fmt.Fprintf(&b, "addr add %s/%d dev %s\n", Controller.V4, prefixLen4(), bridgeName)
	fmt.Fprintf(&b, "addr add %s/%d dev %s nodad\n", Controller.V6, prefixLen6(), bridgeName)
	fmt.Fprintf(&b, "link set %s up\n", bridgeName)
	for _, n := range nodes {
		b.WriteString(joinBatch(n))
	}
	return b.String()
}

// joinBatch makes a node's namespace and joins its veth to the bridge.
// The node's MAC address is fixed, so that a rebooted Pi is found again at
// once by neighbours that still know it.
func joinBatch(n node) string {
	return fmt.Sprintf("netns add %s\nlink add %s type veth peer name eth0 address %s netns %s\nlink set %s master %s up\n",
		n.netns, n.netns, n.mac(), n.netns, n.netns, bridgeName)
}

// mac is a locally administered address made of the node's IPv4 address.
func (n node) mac() string {
	for _, a := range n.addrs {
		if a.Is4() {
			b := a.As4()
			return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
		}
	}
	panic("lab: node " + n.netns + " has no IPv4 address")
}

// nodeBatch configures the inside of one node's namespace. No default route:
// only the lab's own prefixes are reachable from inside.
func nodeBatch(n node) string {
	var b strings.Builder
	b.WriteString("link set lo up\n")
	for _, a := range n.addrs {
		if !inLab(a) {
			panic(fmt.Sprintf("lab: address %s is outside the lab's ranges", a))
		}
		if a.Is4() {
			fmt.Fprintf(&b, "addr add %s/%d dev eth0\n", a, prefixLen4())
		} else {
			fmt.Fprintf(&b, "addr add %s/%d dev eth0 nodad\n", a, prefixLen6())
		}
	}
	b.WriteString("link set eth0 up\n")
	return b.String()
}

// makeNetwork builds the bridge and every node's namespace.
func makeNetwork(ctx context.Context, nodes []node) error {
	cmd := exec.CommandContext(ctx, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(bridgeBatch(nodes))
	if err := run(cmd); err != nil {
		return fmt.Errorf("making the lab network: %w", err)
	}
	return configureNodes(ctx, nodes)
}

// configureNodes sets each node's addresses inside its namespace.
func configureNodes(ctx context.Context, nodes []node) error {
	for _, n := range nodes {
		cmd := exec.CommandContext(ctx, "ip", "-n", n.netns, "-batch", "-")
		cmd.Stdin = strings.NewReader(nodeBatch(n))
		if err := run(cmd); err != nil {
			return fmt.Errorf("configuring namespace %s: %w", n.netns, err)
		}
	}
	return nil
}

// isLabName reports whether a namespace or link name is one the lab makes:
// its bridge, the services, the intruder, a Pi. Other names with the same
// prefix (tests of other packages make their own namespaces) are not the
// lab's to remove.
func isLabName(name string) bool {
	return name == bridgeName || name == svcNetns || name == intrNetns || piNameRE.MatchString(name)
}

var piNameRE = regexp.MustCompile("^" + Prefix + `pi-\d\d$`)

// labNetns lists the lab's network namespaces.
func labNetns(ctx context.Context) ([]string, error) {
	out, err := output(exec.CommandContext(ctx, "ip", "netns", "list"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && isLabName(f[0]) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// labLinks lists the lab's links in the root namespace.
func labLinks(ctx context.Context) ([]string, error) {
	out, err := output(exec.CommandContext(ctx, "ip", "-o", "link", "show"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		// "7: pwl-pi-01@if2: <BROADCAST,..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if isLabName(name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// netnsPids lists the processes living in a network namespace.
func netnsPids(ctx context.Context, netns string) ([]int, error) {
	out, err := output(exec.CommandContext(ctx, "ip", "netns", "pids", netns))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
