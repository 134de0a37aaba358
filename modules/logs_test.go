package modules

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// The drop log tests read the drops script's output as a lab Pi printed it
// (the lab's Pis share one kernel log, so another Pi's lines are in it):
//
//	go test ./modules -run Drops
//	go test ./modules -run '^$' -fuzz FuzzParseDrops -fuzztime 60s

const dropsOut = `uptime 5100.25
[ 5025.123456] piwall drop out: IN= OUT=eth0 SRC=198.18.2.1 DST=198.18.1.12 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 
[ 5026.130000] piwall drop out: IN= OUT=eth0 SRC=198.18.2.1 DST=198.18.1.12 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4243 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 
[ 5030.000001] piwall drop in: IN=eth0 OUT= MAC=aa:bb SRC=198.18.0.66 DST=198.18.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=51000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 
[ 5031.000000] piwall drop out: IN= OUT=eth0 SRC=fd70:6977:616c::2:1 DST=fd70:6977:616c::1:12 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1 
[ 5032.000000] piwall drop out: IN= OUT=eth0 SRC=198.18.2.2 DST=198.18.1.12 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=9 DF PROTO=UDP SPT=40000 DPT=123 LEN=56 
[ 5033.000000] audit: type=1400 something else
[garbage] piwall drop out: SRC=x
end
`

func TestParseDrops(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("fd70:6977:616c::2:1")}
	l, err := ParseDrops([]byte(dropsOut), self)
	if err != nil {
		t.Fatal(err)
	}
	if l.Uptime != 5100250*time.Millisecond {
		t.Errorf("uptime %v", l.Uptime)
	}
	var got []string
	for _, d := range l.Drops {
		got = append(got, fmt.Sprintf("%v %s %s %s>%s %d>%d", d.At, d.Direction, d.Proto, d.Src, d.Dst, d.SPort, d.DPort))
	}
	want := []string{
		"1h23m45.123456s out tcp 198.18.2.1>198.18.1.12 40000>443",
		"1h23m46.13s out tcp 198.18.2.1>198.18.1.12 40000>443",
		"1h23m50.000001s in tcp 198.18.0.66>198.18.2.1 51000>22",
		"1h23m51s out icmpv6 fd70:6977:616c::2:1>fd70:6977:616c::1:12 0>128",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("drops (pi-02's line and lines not of piwall apart):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	names := NamesByAddr(&Facts{Names: map[string]firewall.Resolution{"blocked.lab": {Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.12")}}}})
	var groups []string
	for _, g := range SummarizeDrops(l, names, 0, now) {
		groups = append(groups, fmt.Sprintf("%s %s %s %q %d %s %s", g.Direction, g.What(), g.Peer, g.Name, g.Count, g.First.Format("15:04:05.00"), g.Last.Format("15:04:05.00")))
	}
	wantGroups := []string{
		`out tcp/443 198.18.1.12 "blocked.lab" 2 14:58:44.87 14:58:45.88`,
		`in tcp/22 198.18.0.66 "" 1 14:58:49.75 14:58:49.75`,
		`out icmp fd70:6977:616c::1:12 "" 1 14:58:50.75 14:58:50.75`,
	}
	if strings.Join(groups, "\n") != strings.Join(wantGroups, "\n") {
		t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(groups, "\n"), strings.Join(wantGroups, "\n"))
	}
	if g := SummarizeDrops(l, names, 71*time.Second, now); len(g) != 2 {
		t.Errorf("since 71s: %d groups, want 2 (the drops of 5029.25 s and later)", len(g))
	}
	if _, err := ParseDrops([]byte("uptime 5\n[1.0] piwall drop out: SRC=1.2.3.4 DST=1.2.3.5 PROTO=TCP DPT=1\n"), nil); err == nil {
		t.Errorf("an output without end: no error")
	}
}

func FuzzParseDrops(f *testing.F) {
	f.Add(dropsOut)
	requireSeeds(f, "FuzzParseDrops", 1)
	f.Fuzz(func(t *testing.T, out string) {
		l, err := ParseDrops([]byte(out), nil)
		if err != nil {
			return
		}
		for _, d := range l.Drops {
			if (d.Direction != "in" && d.Direction != "out") || !d.Src.IsValid() || !d.Dst.IsValid() || d.Proto == "" {
				t.Errorf("drop %+v", d)
			}
		}
		for _, g := range SummarizeDrops(l, nil, time.Minute, time.Unix(0, 0)) {
			if g.Count < 1 || g.Last.Before(g.First) && g.Count == 1 {
				t.Errorf("group %+v", g)
			}
		}
	})
}

// TestSuggest: audit mode's would-drop lines and log_drops' drops become
// entries, named by the plan's names, then the host's reverse lookups,
// else by address; a name a reverse lookup made up is not pasted.
func TestSuggest(t *testing.T) {
	out := `uptime 100
[ 90.0] piwall would drop out: IN= OUT=eth0 SRC=198.18.2.1 DST=198.18.1.11 LEN=60 PROTO=TCP SPT=4000 DPT=443 SYN
[ 90.5] piwall would drop out: IN= OUT=eth0 SRC=fd70:6977:616c::2:1 DST=fd70:6977:616c::1:11 LEN=80 PROTO=TCP SPT=4001 DPT=443 SYN
[ 91.0] piwall would drop out: IN= OUT=eth0 SRC=198.18.2.1 DST=198.18.1.11 LEN=60 PROTO=UDP SPT=4002 DPT=8125
[ 92.0] piwall would drop out: IN= OUT=eth0 SRC=198.18.2.1 DST=203.0.113.9 LEN=84 PROTO=ICMP TYPE=8 CODE=0
[ 93.0] piwall would drop out: IN= OUT=eth0 SRC=198.18.2.1 DST=203.0.113.66 LEN=60 PROTO=TCP SPT=4003 DPT=80 SYN
[ 94.0] piwall drop in: IN=eth0 OUT= SRC=198.18.0.66 DST=198.18.2.1 LEN=60 PROTO=TCP SPT=4004 DPT=22 SYN
[ 95.0] piwall would drop out: IN= OUT=eth0 SRC=fd70:6977:616c::2:1 DST=ff02::16 LEN=76 PROTO=ICMPv6 TYPE=143 CODE=0
name 198.18.1.11     api.lab
name fd70:6977:616c::1:11 api.lab
name 203.0.113.66    ${file("/etc/shadow")}.evil
name 198.18.2.1      pi-01.lab
end
`
	l, err := ParseDrops([]byte(out), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Drops[0].Audit || l.Drops[5].Audit {
		t.Errorf("audit: %v, %v; want the would-drop lines only", l.Drops[0].Audit, l.Drops[5].Audit)
	}
	got := Suggest(SummarizeDrops(l, nil, 0, time.Unix(1000, 0)))
	want := `outbound {
  to    = ["203.0.113.66"]
  ports = ["tcp/80"]
}
outbound {
  to    = ["203.0.113.9"]
  ports = ["icmp"]
}
outbound {
  to    = ["api.lab"]
  ports = ["tcp/443", "udp/8125"]
}
inbound {
  from  = ["198.18.0.66"]
  ports = ["tcp/22"]
}
`
	if got != want {
		t.Errorf("Suggest:\n%s\nwant:\n%s", got, want)
	}
}
