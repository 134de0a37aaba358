// Package firewall turns a host's merged allowlists into the iptables
// rulesets it should have, reads the rulesets it has, and says how they
// differ in the operator's words.
//
// # The canonical form
//
// Desired rulesets are compiled straight into the text that iptables-save
// prints back once iptables-restore has loaded them: the same module names
// (-m tcp after -p tcp), /32 and /128 suffixes, option order and quoting.
// So desired and live compare line by line, and a host that needs no change
// is recognized as unchanged. The round-trip test in this package holds the
// compiler to that, against the real iptables in a namespace of its own.
//
// # Comments
//
// Every rule piwall writes has a comment starting "piwall: " naming what
// produced it: "piwall: loopback", or "piwall: kiosk outbound 2:
// api.example.com" for the second outbound entry of allowlist kiosk. Rules
// without such a comment are foreign; Describe tells them apart.
package firewall
