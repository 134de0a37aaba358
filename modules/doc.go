// Package modules computes, per host, what piwall would change: the desired
// state, the facts read from the host (a command and a pure parser each),
// the diff between them and the steps that apply it. It does no network I/O.
package modules
