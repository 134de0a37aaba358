package plans

import (
	"fmt"
	"math/big"
	"net/netip"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/gocty"
)

// The cidr* functions, with Terraform's meaning, for plans that derive
// addresses from one network: cidrsubnet(var.site, 8, 2), cidrhost(net, 5).

var cidrHostFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "hostnum", Type: cty.Number}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parsePrefixArg(args[0])
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		var n int64
		if err := gocty.FromCtyValue(args[1], &n); err != nil {
			return cty.UnknownVal(cty.String), err
		}
		a, err := hostAddr(p, big.NewInt(n))
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		return cty.StringVal(a.String()), nil
	},
})

var cidrNetmaskFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parsePrefixArg(args[0])
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		if !p.Addr().Is4() {
			return cty.UnknownVal(cty.String), fmt.Errorf("only IPv4 networks have a netmask")
		}
		mask := uint32(0xffffffff) << (32 - p.Bits())
		if p.Bits() == 0 {
			mask = 0
		}
		a := netip.AddrFrom4([4]byte{byte(mask >> 24), byte(mask >> 16), byte(mask >> 8), byte(mask)})
		return cty.StringVal(a.String()), nil
	},
})

var cidrSubnetFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "newbits", Type: cty.Number}, {Name: "netnum", Type: cty.Number}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parsePrefixArg(args[0])
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		var newbits, num int64
		if err := gocty.FromCtyValue(args[1], &newbits); err != nil {
			return cty.UnknownVal(cty.String), err
		}
		if err := gocty.FromCtyValue(args[2], &num); err != nil {
			return cty.UnknownVal(cty.String), err
		}
		if newbits < 0 || newbits > int64(p.Addr().BitLen()) {
			// Checked here, before subnet adds it to the prefix length: a
			// huge newbits would wrap around.
			return cty.UnknownVal(cty.String), fmt.Errorf("cannot extend /%d by %d bits", p.Bits(), newbits)
		}
		s, err := subnet(p, int(newbits), big.NewInt(num))
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		return cty.StringVal(s.String()), nil
	},
})

var cidrSubnetsFunc = function.New(&function.Spec{
	Params:   []function.Parameter{{Name: "prefix", Type: cty.String}},
	VarParam: &function.Parameter{Name: "newbits", Type: cty.Number},
	Type:     function.StaticReturnType(cty.List(cty.String)),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parsePrefixArg(args[0])
		if err != nil {
			return cty.UnknownVal(cty.List(cty.String)), err
		}
		if len(args) == 1 {
			return cty.ListValEmpty(cty.String), nil
		}
		// Consecutive subnets, each aligned to its own size, as Terraform does.
		total := p.Addr().BitLen()
		next := addrInt(p.Masked().Addr())
		end := new(big.Int).Add(addrInt(p.Masked().Addr()), new(big.Int).Lsh(big.NewInt(1), uint(total-p.Bits())))
		var out []cty.Value
		for _, v := range args[1:] {
			var nb int64
			if err := gocty.FromCtyValue(v, &nb); err != nil {
				return cty.UnknownVal(cty.List(cty.String)), err
			}
			// Check nb before adding: a huge nb would wrap around.
			if nb < 1 || nb > int64(total-p.Bits()) {
				return cty.UnknownVal(cty.List(cty.String)), fmt.Errorf("cannot extend /%d by %d bits", p.Bits(), nb)
			}
			bits := p.Bits() + int(nb)
			if bits > total {
				return cty.UnknownVal(cty.List(cty.String)), fmt.Errorf("cannot extend /%d by %d bits", p.Bits(), nb)
			}
			size := new(big.Int).Lsh(big.NewInt(1), uint(total-bits))
			// Round next up to a multiple of size.
			rem := new(big.Int).Mod(next, size)
			if rem.Sign() != 0 {
				next.Add(next, new(big.Int).Sub(size, rem))
			}
			if new(big.Int).Add(next, size).Cmp(end) > 0 {
				return cty.UnknownVal(cty.List(cty.String)), fmt.Errorf("not enough room in %s", p)
			}
			out = append(out, cty.StringVal(netip.PrefixFrom(intAddr(next, p.Addr().Is4()), bits).String()))
			next = new(big.Int).Add(next, size)
		}
		return cty.ListVal(out), nil
	},
})

func parsePrefixArg(v cty.Value) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v.AsString())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid network %q: write an address and a prefix length, like 10.0.0.0/24", v.AsString())
	}
	return p, nil
}

func subnet(p netip.Prefix, newbits int, num *big.Int) (netip.Prefix, error) {
	total := p.Addr().BitLen()
	bits := p.Bits() + newbits
	if newbits < 0 || bits > total {
		return netip.Prefix{}, fmt.Errorf("cannot extend /%d by %d bits", p.Bits(), newbits)
	}
	if num.Sign() < 0 || num.Cmp(new(big.Int).Lsh(big.NewInt(1), uint(newbits))) >= 0 {
		return netip.Prefix{}, fmt.Errorf("%s has no subnet number %s with %d new bits", p, num, newbits)
	}
	base := addrInt(p.Masked().Addr())
	base.Add(base, new(big.Int).Lsh(num, uint(total-bits)))
	return netip.PrefixFrom(intAddr(base, p.Addr().Is4()), bits), nil
}

func hostAddr(p netip.Prefix, n *big.Int) (netip.Addr, error) {
	size := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
	num := n
	if n.Sign() < 0 {
		n = new(big.Int).Add(size, n) // -1 is the last address, as in Terraform
	}
	if n.Sign() < 0 || n.Cmp(size) >= 0 {
		return netip.Addr{}, fmt.Errorf("%s has no host number %s", p, num)
	}
	return intAddr(new(big.Int).Add(addrInt(p.Masked().Addr()), n), p.Addr().Is4()), nil
}

func addrInt(a netip.Addr) *big.Int {
	b := a.AsSlice()
	return new(big.Int).SetBytes(b)
}

func intAddr(i *big.Int, v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		i.FillBytes(b[:])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	i.FillBytes(b[:])
	return netip.AddrFrom16(b)
}
