//go:build unix

package inventory

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedByUserOrRoot reports whether the user running piwall or root owns
// a file, as ssh's secure_permissions requires of its configuration.
func ownedByUserOrRoot(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return st.Uid == 0 || int(st.Uid) == os.Getuid()
}
