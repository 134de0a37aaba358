// Package runner carries out piwall's work on remote hosts: the ordered
// apply protocol over SSH connections, fleet rollout, progress events and
// each host's counts (--stats).
package runner
