package runner

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/piwall/piwall/modules"
)

// HostDialer is a Conn that can open a TCP connection from the host itself
// (over SSH, a direct-tcpip channel). DialFromHost connects to addr as the
// host would; it fails where the host does not forward (sshd's
// AllowTcpForwarding no) or nothing answers there.
type HostDialer interface {
	DialFromHost(ctx context.Context, addr string) (net.Conn, error)
}

// cnameTimeout bounds the asking of a host's resolver for CNAME chains.
const cnameTimeout = 5 * time.Second

// cnameChains fills in the whole CNAME chain of each name in f that went
// through one: getent on the host tells only where a chain ends. It asks
// the host's first resolver, over TCP from the host, every name in one
// exchange. It is best effort: where the host cannot forward, or its
// resolver does not answer over TCP, a name keeps the end of its chain,
// as getent said it; a chain that does not end there is not taken.
func cnameChains(ctx context.Context, c Conn, f *modules.Facts) {
	hd, ok := c.(HostDialer)
	if !ok || len(f.Resolvers) == 0 {
		return
	}
	var names []string
	for n, r := range f.Names {
		if len(r.CNAMEs) > 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 || len(names) > 1<<16 {
		return
	}
	slices.Sort(names)
	ctx, cancel := context.WithTimeout(ctx, cnameTimeout)
	defer cancel()
	nc, err := hd.DialFromHost(ctx, net.JoinHostPort(f.Resolvers[0].String(), "53"))
	if err != nil {
		return
	}
	// A channel has no deadlines of its own: closing it ends a read.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	var queries []byte
	for i, n := range names {
		q, err := modules.CNAMEQuery(n, uint16(i))
		if err != nil {
			return
		}
		queries = append(queries, q...)
	}
	// Written while the answers are read: a resolver may answer the first
	// before it reads the next.
	go nc.Write(queries)
	r := bufio.NewReader(nc)
	for range names {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		id, name, chain, err := modules.ParseCNAMEAnswer(msg)
		if err != nil || int(id) >= len(names) || !strings.EqualFold(name, names[id]) || len(chain) == 0 {
			continue
		}
		res := f.Names[names[id]]
		if strings.EqualFold(chain[len(chain)-1], res.CNAMEs[len(res.CNAMEs)-1]) {
			res.CNAMEs = chain
			f.Names[names[id]] = res
		}
	}
}
