package modules

import (
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// answer builds a resolver's answer to CNAMEQuery's question about name:
// the CNAME records given (from → to), then an A record.
func answer(t testing.TB, id uint16, name string, rcode dnsmessage.RCode, cnames ...[2]string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RCode: rcode, RecursionAvailable: true})
	b.EnableCompression()
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(fqdn(name)), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	b.StartAnswers()
	last := fqdn(name)
	for _, c := range cnames {
		b.CNAMEResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(fqdn(c[0])), Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(fqdn(c[1]))})
		last = fqdn(c[1])
	}
	if rcode == dnsmessage.RCodeSuccess {
		b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(last), Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{198, 18, 1, 10}})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestCNAMEChain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cnames [][2]string
		rcode  dnsmessage.RCode
		want   []string
		err    bool
	}{
		{name: "no chain", want: nil},
		{name: "two hops, the lab's dashboard", cnames: [][2]string{{"dashboard.lab", "dashboard.cdn.lab"}, {"dashboard.cdn.lab", "edge.cdn.lab"}},
			want: []string{"dashboard.cdn.lab", "edge.cdn.lab"}},
		{name: "records out of order", cnames: [][2]string{{"b.example", "c.example"}, {"a.example", "b.example"}},
			want: []string{"b.example", "c.example"}},
		{name: "a loop ends where it loops", cnames: [][2]string{{"a.example", "b.example"}, {"b.example", "a.example"}},
			want: []string{"b.example"}},
		{name: "no such name", rcode: dnsmessage.RCodeNameError, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := "dashboard.lab"
			if len(tc.cnames) > 0 {
				q = tc.cnames[0][0]
				if tc.name == "records out of order" {
					q = "a.example"
				}
			}
			query, err := CNAMEQuery(q, 7)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.BigEndian.Uint16(query); int(n) != len(query)-2 {
				t.Errorf("the query's TCP length is %d, its message %d bytes", n, len(query)-2)
			}
			id, name, chain, err := ParseCNAMEAnswer(answer(t, 7, q, tc.rcode, tc.cnames...))
			if (err != nil) != tc.err {
				t.Fatalf("ParseCNAMEAnswer: %v, want error %v", err, tc.err)
			}
			if id != 7 || name != q || !slices.Equal(chain, tc.want) {
				t.Errorf("got id %d, name %q, chain %q; want 7, %q, %q", id, name, chain, q, tc.want)
			}
		})
	}
}

// FuzzParseCNAMEAnswer: an answer from the host's resolver is outside
// input; whatever it holds, the parser returns a chain without loops or an
// error, and never panics.
func FuzzParseCNAMEAnswer(f *testing.F) {
	f.Add(answer(f, 1, "dashboard.lab", dnsmessage.RCodeSuccess, [2]string{"dashboard.lab", "dashboard.cdn.lab"}, [2]string{"dashboard.cdn.lab", "edge.cdn.lab"}))
	f.Add(answer(f, 2, "a.example", dnsmessage.RCodeSuccess, [2]string{"a.example", "b.example"}, [2]string{"b.example", "a.example"}))
	f.Add(answer(f, 3, "x.example", dnsmessage.RCodeNameError))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _, chain, err := ParseCNAMEAnswer(msg)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range chain {
			if seen[c] {
				t.Fatalf("chain %q repeats %q", chain, c)
			}
			seen[c] = true
		}
	})
}
