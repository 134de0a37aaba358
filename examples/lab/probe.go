//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Probes run inside a namespace of the lab (a Pi's, the intruder's) so that
// their packets leave from that namespace's addresses and cross its firewall,
// as the Pi's own programs' packets would.

// ProbeFrom runs Probe inside the network namespace netns.
func ProbeFrom(ctx context.Context, netns, proto string, to netip.AddrPort) (string, error) {
	out, err := inNetns(ctx, netns, "conn", proto, to.String())
	return strings.TrimSpace(string(out)), err
}

// Record is one answer of a DNS query.
type Record struct {
	Name  string `json:"name"`  // owner name, without the final dot
	Type  string `json:"type"`  // "A", "AAAA", "CNAME"
	Value string `json:"value"` // address, or the target of a CNAME
}

// LookupFrom asks the lab's name server, from inside netns, for the records of
// name of type qtype ("A" or "AAAA"): the whole answer, CNAME chain included.
func LookupFrom(ctx context.Context, netns, name, qtype string) ([]Record, error) {
	out, err := inNetns(ctx, netns, "dns", name, qtype)
	if err != nil {
		return nil, err
	}
	var rs []Record
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("reading the answer for %s %s: %w", name, qtype, err)
	}
	return rs, nil
}

func inNetns(ctx context.Context, netns string, args ...string) ([]byte, error) {
	exe, err := self()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, exe}, args...)...)
	cmd.Env = []string{roleEnv + "=probe"}
	out, err := output(cmd)
	var ce *CommandError
	if errors.As(err, &ce) && ce.Stderr != "" {
		// The probe's own words say what happened (timeout, refused).
		return out, errors.New(strings.TrimSpace(strings.TrimPrefix(ce.Stderr, "piwall lab probe: ")))
	}
	return out, err
}

// probe is the role run by inNetns.
func probe(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	switch {
	case len(args) == 3 && args[0] == "conn":
		to, err := netip.ParseAddrPort(args[2])
		if err != nil {
			return err
		}
		banner, err := Probe(ctx, args[1], to)
		if err != nil {
			return err
		}
		fmt.Println(banner)
		return nil
	case len(args) == 3 && args[0] == "dns":
		rs, err := lookup(ctx, DNS.V4, args[1], args[2])
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(rs)
	}
	return fmt.Errorf("usage: conn tcp|udp ADDR:PORT | dns NAME A|AAAA")
}

// lookup sends one DNS query over UDP and returns the answer section.
func lookup(ctx context.Context, server netip.Addr, name, qtype string) ([]Record, error) {
	types := map[string]dnsmessage.Type{"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA}
	t, ok := types[qtype]
	if !ok {
		return nil, fmt.Errorf("query type %q: want A or AAAA", qtype)
	}
	qname, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, err
	}
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: uint16(time.Now().UnixNano()), RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: t, Class: dnsmessage.ClassINET}},
	}
	q, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", netip.AddrPortFrom(server, 53).String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	var resp dnsmessage.Message
	if err := resp.Unpack(buf[:n]); err != nil {
		return nil, fmt.Errorf("malformed DNS answer: %w", err)
	}
	if resp.ID != msg.ID {
		return nil, errors.New("DNS answer to another query")
	}
	if resp.RCode != dnsmessage.RCodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", name, qtype, resp.RCode)
	}
	rs := []Record{}
	for _, a := range resp.Answers {
		r := Record{Name: strings.TrimSuffix(a.Header.Name.String(), ".")}
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			r.Type, r.Value = "A", netip.AddrFrom4(b.A).String()
		case *dnsmessage.AAAAResource:
			r.Type, r.Value = "AAAA", netip.AddrFrom16(b.AAAA).String()
		case *dnsmessage.CNAMEResource:
			r.Type, r.Value = "CNAME", strings.TrimSuffix(b.CNAME.String(), ".")
		default:
			continue
		}
		rs = append(rs, r)
	}
	return rs, nil
}
