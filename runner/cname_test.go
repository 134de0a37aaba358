package runner

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/piwall/piwall/modules"
	"github.com/piwall/piwall/modules/firewall"
	"golang.org/x/net/dns/dnsmessage"
)

// resolverConn is a connection whose host forwards TCP to a resolver that
// answers every query with chains[name] (or, for a name it does not know,
// NXDOMAIN).
type resolverConn struct {
	Conn
	chains map[string][]string
	asked  []string
}

func (c *resolverConn) DialFromHost(ctx context.Context, addr string) (net.Conn, error) {
	if addr != "192.168.1.1:53" {
		return nil, &net.OpError{Op: "dial", Err: io.EOF}
	}
	host, piwall := net.Pipe()
	go func() {
		defer host.Close()
		for {
			var l [2]byte
			if _, err := io.ReadFull(host, l[:]); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(host, msg); err != nil {
				return
			}
			var m dnsmessage.Message
			if err := m.Unpack(msg); err != nil {
				return
			}
			q := m.Questions[0]
			name := q.Name.String()
			c.asked = append(c.asked, name)
			m.Header.Response = true
			chain, ok := c.chains[name[:len(name)-1]]
			if !ok {
				m.Header.RCode = dnsmessage.RCodeNameError
			}
			from := q.Name
			for _, to := range chain {
				target := dnsmessage.MustNewName(to + ".")
				m.Answers = append(m.Answers, dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: from, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET},
					Body: &dnsmessage.CNAMEResource{CNAME: target}})
				from = target
			}
			b, err := m.AppendPack(make([]byte, 2, 512))
			if err != nil {
				return
			}
			binary.BigEndian.PutUint16(b, uint16(len(b)-2))
			host.Write(b)
		}
	}()
	return piwall, nil
}

func TestCNAMEChains(t *testing.T) {
	a := netip.MustParseAddr("198.18.1.10")
	facts := func() *modules.Facts {
		return &modules.Facts{Resolvers: []netip.Addr{netip.MustParseAddr("192.168.1.1")}, Names: map[string]firewall.Resolution{
			"dashboard.lab": {Name: "dashboard.lab", CNAMEs: []string{"edge.cdn.lab"}, Addrs: []netip.Addr{a}},
			"api.lab":       {Name: "api.lab", Addrs: []netip.Addr{a}},
			"moved.lab":     {Name: "moved.lab", CNAMEs: []string{"old-edge.lab"}, Addrs: []netip.Addr{a}},
		}}
	}
	c := &resolverConn{chains: map[string][]string{
		"dashboard.lab": {"dashboard.cdn.lab", "edge.cdn.lab"},
		"moved.lab":     {"new-edge.lab"},
	}}
	f := facts()
	cnameChains(context.Background(), c, f)
	if got := f.Names["dashboard.lab"].CNAMEs; !slices.Equal(got, []string{"dashboard.cdn.lab", "edge.cdn.lab"}) {
		t.Errorf("dashboard.lab's chain: %q, want the whole chain", got)
	}
	if got := f.Names["moved.lab"].CNAMEs; !slices.Equal(got, []string{"old-edge.lab"}) {
		t.Errorf("moved.lab's chain: %q, want getent's end kept: the resolver's chain ends elsewhere", got)
	}
	slices.Sort(c.asked)
	if !slices.Equal(c.asked, []string{"dashboard.lab.", "moved.lab."}) {
		t.Errorf("asked %q, want only the names getent saw go through a CNAME", c.asked)
	}

	// A host that does not forward: the facts stay as getent gave them.
	f = facts()
	f.Resolvers = []netip.Addr{netip.MustParseAddr("192.168.1.2")}
	cnameChains(context.Background(), c, f)
	if got := f.Names["dashboard.lab"].CNAMEs; !slices.Equal(got, []string{"edge.cdn.lab"}) {
		t.Errorf("without forwarding, dashboard.lab's chain: %q, want getent's", got)
	}
}
