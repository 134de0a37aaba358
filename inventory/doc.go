// Package inventory says who the hosts of a plan are and how to reach each:
// the plan's connection settings merged with ~/.ssh/config, known_hosts and
// the --limit selection.
package inventory
