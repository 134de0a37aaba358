//go:build !unix

package firewall

import "errors"

// inodeOf: network namespaces are Linux's; the tests that need them fail
// their guard elsewhere.
func inodeOf(path string) (uint64, error) {
	return 0, errors.New(path + ": no inodes here")
}
