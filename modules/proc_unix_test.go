//go:build unix

package modules

import (
	"os/exec"
	"syscall"
)

// The harness's process handling, where the scripts run (unix): a command
// in a process group of its own, killed with all its children.

func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// netnsInode is the inode of this process's network namespace.
func netnsInode() (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, err
	}
	return uint64(st.Ino), nil
}
