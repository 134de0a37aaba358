package plans

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// The cidr* functions must agree with Terraform's: the "terraform" cases
// are the examples of Terraform's documentation
// (website/docs/language/functions/cidr*.mdx), with the results printed
// there.

func TestCidrSubnet(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prefix  string
		newbits int
		netnum  int
		want    string
	}{
		{"terraform ipv4 /12 to /16", "172.16.0.0/12", 4, 2, "172.18.0.0/16"},
		{"terraform ipv4 last subnet of a /24", "10.1.2.0/24", 4, 15, "10.1.2.240/28"},
		{"terraform ipv6", "fd00:fd12:3456:7890::/56", 16, 162, "fd00:fd12:3456:7800:a200::/72"},
		{"no new bits", "10.1.2.0/24", 0, 0, "10.1.2.0/24"},
		{"host bits in the prefix ignored", "10.1.2.3/24", 8, 7, "10.1.2.7/32"},
		{"to a single ipv6 address", "2001:db8::/64", 64, 1, "2001:db8::1/128"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, cidrSubnetFunc, cty.StringVal(tt.prefix), cty.NumberIntVal(int64(tt.newbits)), cty.NumberIntVal(int64(tt.netnum)))
			if got.AsString() != tt.want {
				t.Errorf("cidrsubnet(%q, %d, %d) = %s, want %s", tt.prefix, tt.newbits, tt.netnum, got.AsString(), tt.want)
			}
		})
	}
}

func TestCidrHost(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prefix  string
		hostnum int64
		want    string
	}{
		{"terraform ipv4", "10.12.112.0/20", 16, "10.12.112.16"},
		{"terraform ipv4 past the first octet", "10.12.112.0/20", 268, "10.12.113.12"},
		{"terraform ipv6 with host bits in the prefix", "fd00:fd12:3456:7890:00a2::/72", 34, "fd00:fd12:3456:7890::22"},
		{"terraform from the start", "10.0.0.0/8", 2, "10.0.0.2"},
		{"terraform from the end", "10.0.0.0/8", -2, "10.255.255.254"},
		{"terraform first host of a subnet", "10.1.2.240/28", 1, "10.1.2.241"},
		{"terraform last host of a subnet", "10.1.2.240/28", 14, "10.1.2.254"},
		{"network address", "192.0.2.0/24", 0, "192.0.2.0"},
		{"broadcast address", "192.0.2.0/24", -1, "192.0.2.255"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, cidrHostFunc, cty.StringVal(tt.prefix), cty.NumberIntVal(tt.hostnum))
			if got.AsString() != tt.want {
				t.Errorf("cidrhost(%q, %d) = %s, want %s", tt.prefix, tt.hostnum, got.AsString(), tt.want)
			}
		})
	}
}

func TestCidrNetmask(t *testing.T) {
	for _, tt := range []struct {
		name   string
		prefix string
		want   string
	}{
		{"terraform /12", "172.16.0.0/12", "255.240.0.0"},
		{"/24", "192.0.2.0/24", "255.255.255.0"},
		{"/0", "0.0.0.0/0", "0.0.0.0"},
		{"/32", "192.0.2.7/32", "255.255.255.255"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, cidrNetmaskFunc, cty.StringVal(tt.prefix))
			if got.AsString() != tt.want {
				t.Errorf("cidrnetmask(%q) = %s, want %s", tt.prefix, got.AsString(), tt.want)
			}
		})
	}
}

func TestCidrSubnets(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prefix  string
		newbits []int64
		want    []string
	}{
		{"terraform ipv4, a smaller one in between", "10.1.0.0/16", []int64{4, 4, 8, 4},
			[]string{"10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/24", "10.1.48.0/20"}},
		{"terraform ipv6", "fd00:fd12:3456:7890::/56", []int64{16, 16, 16, 32},
			[]string{"fd00:fd12:3456:7800::/72", "fd00:fd12:3456:7800:100::/72", "fd00:fd12:3456:7800:200::/72", "fd00:fd12:3456:7800:300::/88"}},
		{"terraform nested, outer", "10.0.0.0/8", []int64{8, 8, 8, 8},
			[]string{"10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"}},
		{"terraform nested, inner", "10.3.0.0/16", []int64{4, 4},
			[]string{"10.3.0.0/20", "10.3.16.0/20"}},
		{"fills the prefix exactly", "192.0.2.0/24", []int64{1, 2, 2},
			[]string{"192.0.2.0/25", "192.0.2.128/26", "192.0.2.192/26"}},
		{"no newbits", "192.0.2.0/24", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []cty.Value{cty.StringVal(tt.prefix)}
			for _, n := range tt.newbits {
				args = append(args, cty.NumberIntVal(n))
			}
			var got []string
			for _, v := range call(t, cidrSubnetsFunc, args...).AsValueSlice() {
				got = append(got, v.AsString())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("cidrsubnets(%q, %v) = %q, want %q", tt.prefix, tt.newbits, got, tt.want)
			}
		})
	}
}

func TestCidrErrors(t *testing.T) {
	num := func(n int64) cty.Value { return cty.NumberIntVal(n) }
	str := cty.StringVal
	for _, tt := range []struct {
		name string
		fn   function.Function
		args []cty.Value
		want string // a part of the error
	}{
		{"cidrsubnet past the address length", cidrSubnetFunc, []cty.Value{str("10.0.0.0/16"), num(20), num(1)}, "cannot extend /16 by 20 bits"},
		{"cidrsubnet with negative newbits", cidrSubnetFunc, []cty.Value{str("10.0.0.0/16"), num(-1), num(0)}, "cannot extend /16 by -1 bits"},
		{"cidrsubnet with newbits that would wrap around", cidrSubnetFunc, []cty.Value{str("10.0.0.0/8"), num(1<<63 - 1), num(1)}, "cannot extend /8 by 9223372036854775807 bits"},
		{"cidrsubnet netnum too big", cidrSubnetFunc, []cty.Value{str("10.1.2.0/24"), num(4), num(16)}, "has no subnet number 16 with 4 new bits"},
		{"cidrsubnet negative netnum", cidrSubnetFunc, []cty.Value{str("10.1.2.0/24"), num(4), num(-1)}, "has no subnet number -1"},
		{"cidrsubnet not a network", cidrSubnetFunc, []cty.Value{str("10.1.2.0"), num(4), num(1)}, `invalid network "10.1.2.0"`},
		{"cidrhost past the end", cidrHostFunc, []cty.Value{str("192.0.2.0/30"), num(4)}, "192.0.2.0/30 has no host number 4"},
		{"cidrhost before the start", cidrHostFunc, []cty.Value{str("192.0.2.0/30"), num(-5)}, "192.0.2.0/30 has no host number -5"},
		{"cidrhost with a name", cidrHostFunc, []cty.Value{str("api.example.com/24"), num(1)}, `invalid network "api.example.com/24"`},
		{"cidrnetmask of ipv6", cidrNetmaskFunc, []cty.Value{str("2001:db8::/32")}, "only IPv4 networks have a netmask"},
		{"cidrsubnets out of room", cidrSubnetsFunc, []cty.Value{str("10.0.0.0/30"), num(1), num(1), num(1)}, "not enough room in 10.0.0.0/30"},
		{"cidrsubnets zero newbits", cidrSubnetsFunc, []cty.Value{str("10.0.0.0/24"), num(0)}, "cannot extend /24 by 0 bits"},
		{"cidrsubnets newbits that would wrap around", cidrSubnetsFunc, []cty.Value{str("fd00::/8"), num(1<<63 - 1)}, "cannot extend /8 by 9223372036854775807 bits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn.Call(tt.args)
			if err == nil {
				t.Fatalf("got %#v, want an error containing %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "panic") {
				t.Errorf("error %q comes from a panic", err)
			}
		})
	}
}

// call calls fn and fails the test on an error.
func call(t *testing.T, fn function.Function, args ...cty.Value) cty.Value {
	t.Helper()
	v, err := fn.Call(args)
	if err != nil {
		t.Fatalf("call with %#v: %v", args, err)
	}
	return v
}
