package ssh

import (
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/piwall/piwall/inventory"
)

// usableAlgorithms are those golang.org/x/crypto/ssh implements, the
// insecure ones too: ssh_config may ask for them (Ciphers +aes128-cbc,
// for an old host), as ssh would use them.
var usableAlgorithms = func() gossh.Algorithms {
	s, i := gossh.SupportedAlgorithms(), gossh.InsecureAlgorithms()
	return gossh.Algorithms{
		Ciphers:        append(s.Ciphers, i.Ciphers...),
		MACs:           append(s.MACs, i.MACs...),
		KeyExchanges:   append(s.KeyExchanges, i.KeyExchanges...),
		HostKeys:       append(s.HostKeys, i.HostKeys...),
		PublicKeyAuths: append(s.PublicKeyAuths, i.PublicKeyAuths...),
	}
}()

// restrict returns the names of list that allowed holds, in list's order.
func restrict(list, allowed []string) []string {
	var out []string
	for _, n := range list {
		for _, a := range allowed {
			if n == a {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// applyAlgorithms sets the algorithm lists ssh_config gives t, keeping
// those piwall can use; a list of none it can use is an error naming the
// keyword. Unset lists stay golang.org/x/crypto/ssh's defaults.
func applyAlgorithms(cfg *gossh.ClientConfig, t inventory.Target) error {
	for _, l := range []struct {
		keyword      string
		from, usable []string
		to           *[]string
	}{
		{"Ciphers", t.Algorithms.Ciphers, usableAlgorithms.Ciphers, &cfg.Ciphers},
		{"MACs", t.Algorithms.MACs, usableAlgorithms.MACs, &cfg.MACs},
		{"KexAlgorithms", t.Algorithms.KeyExchanges, usableAlgorithms.KeyExchanges, &cfg.KeyExchanges},
	} {
		if l.from == nil {
			continue
		}
		if *l.to = restrict(l.from, l.usable); len(*l.to) == 0 {
			return noneUsable(t, l.keyword, l.from, l.usable)
		}
	}
	if t.Algorithms.HostKeys != nil {
		allowed := restrict(t.Algorithms.HostKeys, usableAlgorithms.HostKeys)
		if len(allowed) == 0 {
			return noneUsable(t, "HostKeyAlgorithms", t.Algorithms.HostKeys, usableAlgorithms.HostKeys)
		}
		// The types known_hosts holds, as far as ssh_config allows them.
		if known := restrict(cfg.HostKeyAlgorithms, allowed); len(known) > 0 {
			allowed = known
		}
		cfg.HostKeyAlgorithms = allowed
	}
	return nil
}

func noneUsable(t inventory.Target, keyword string, asked, usable []string) error {
	return fmt.Errorf("%s: none of ssh_config's %s %s is one piwall can use (%s)", t.Label, keyword, strings.Join(asked, ","), strings.Join(usable, ","))
}

// acceptedSigners keeps the signers PubkeyAcceptedAlgorithms accepts,
// each signing only with the algorithms it allows; all of them when it is
// not set.
func acceptedSigners(signers []gossh.Signer, accepted []string) []gossh.Signer {
	if accepted == nil {
		return signers
	}
	var out []gossh.Signer
	for _, s := range signers {
		as, ok := s.(gossh.AlgorithmSigner)
		if !ok {
			continue
		}
		algos := restrict(signatureAlgorithms(s.PublicKey().Type()), accepted)
		if len(algos) == 0 {
			continue
		}
		ms, err := gossh.NewSignerWithAlgorithms(as, algos)
		if err != nil {
			continue
		}
		out = append(out, ms)
	}
	return out
}

// signatureAlgorithms are the algorithms a key of a type signs with.
func signatureAlgorithms(keyType string) []string {
	switch keyType {
	case gossh.KeyAlgoRSA:
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
	case gossh.CertAlgoRSAv01:
		return []string{gossh.CertAlgoRSASHA512v01, gossh.CertAlgoRSASHA256v01, gossh.CertAlgoRSAv01}
	}
	return []string{keyType}
}
