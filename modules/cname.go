package modules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// A name's CNAME chain, as the host's own resolver answers it. getent on
// the host tells only where a chain ends; the runner asks the resolver
// itself, over a TCP stream the host opens (an SSH direct-tcpip channel),
// with these: one query a name, all sent at once, answers in any order.

// CNAMEQuery is a DNS query over TCP (RFC 7766: a two-byte length, then
// the message) for name's A record, recursion desired: a recursive
// resolver's answer holds the whole chain.
func CNAMEQuery(name string, id uint16) ([]byte, error) {
	n, err := dnsmessage.NewName(fqdn(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	b, err := msg.AppendPack(make([]byte, 2, 514))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	return b, nil
}

// ParseCNAMEAnswer reads one DNS answer (without its TCP length) and
// returns its ID and the CNAME chain from the name it asks about: each
// target in order, not counting the name, without final dots. A chain
// that loops or leaves the answer's records ends where it does.
func ParseCNAMEAnswer(msg []byte) (id uint16, name string, chain []string, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return 0, "", nil, fmt.Errorf("dns answer: %w", err)
	}
	if !h.Response {
		return 0, "", nil, errors.New("dns answer: not a response")
	}
	q, err := p.Question()
	if err != nil {
		return 0, "", nil, fmt.Errorf("dns answer: %w", err)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return 0, "", nil, fmt.Errorf("dns answer: %w", err)
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return h.ID, unfqdn(q.Name.String()), nil, fmt.Errorf("dns answer: %s", h.RCode)
	}
	next := map[string]string{}
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return 0, "", nil, fmt.Errorf("dns answer: %w", err)
		}
		if rh.Type != dnsmessage.TypeCNAME {
			if err := p.SkipAnswer(); err != nil {
				return 0, "", nil, fmt.Errorf("dns answer: %w", err)
			}
			continue
		}
		c, err := p.CNAMEResource()
		if err != nil {
			return 0, "", nil, fmt.Errorf("dns answer: %w", err)
		}
		next[strings.ToLower(rh.Name.String())] = c.CNAME.String()
	}
	name = unfqdn(q.Name.String())
	cur := strings.ToLower(q.Name.String())
	seen := map[string]bool{cur: true}
	for {
		to, ok := next[cur]
		if !ok || seen[strings.ToLower(to)] {
			break
		}
		chain = append(chain, unfqdn(to))
		cur = strings.ToLower(to)
		seen[cur] = true
	}
	return h.ID, name, chain, nil
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func unfqdn(name string) string { return strings.TrimSuffix(name, ".") }
