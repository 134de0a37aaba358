package plans

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
)

// Digest identifies the plan's sources: the names and contents of its
// files. A saved plan records it, and each generation on a host too.
func (p *Plan) Digest() string {
	names := make([]string, 0, len(p.Files))
	for n := range p.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n + "\x00"))
		h.Write(p.Files[n].Bytes)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
