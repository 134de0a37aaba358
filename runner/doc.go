// Package runner carries out piwall's work on remote hosts: SSH and sftp
// connections, the ordered apply protocol, fleet rollout and progress events.
package runner
