//go:build unix

package firewall

import (
	"fmt"
	"os"
	"syscall"
)

func inodeOf(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", path)
	}
	return uint64(st.Ino), nil
}
