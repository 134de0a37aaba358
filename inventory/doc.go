// Package inventory says who the hosts of a plan are and how to reach each:
// the plan's connection settings merged with ssh_config (the user's, then
// the system's, read as OpenSSH 9 reads them: Include, Host and Match, the
// tokens, jump hosts each resolved in turn), known_hosts and the --limit
// selection.
package inventory
