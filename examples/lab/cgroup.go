//go:build linux

package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// A Pi booting systemd gets a cgroup of its own in the machine's cgroup v2
// hierarchy, below cgroupDir: its cgroup namespace makes that the root
// systemd sees, so Pis do not manage each other's.
const cgroupDir = "piwall-lab"

// cgroupRoot finds the machine's cgroup v2 hierarchy (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid system) and returns the lab's
// directory in it, made if needed.
func cgroupRoot() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "... mountpoint options - cgroup2 source superoptions"
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		dir := filepath.Join(f[4], cgroupDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("making the lab's cgroup: %w", err)
		}
		return dir, nil
	}
	return "", errors.New("a lab with systemd needs a cgroup v2 hierarchy, and this machine mounts none")
}

// removeCgroups removes the lab's cgroups, deepest first, once their
// processes are gone.
func removeCgroups() error {
	root, err := cgroupRoot()
	if err != nil {
		return nil // no hierarchy, so no cgroups of the lab
	}
	return removeCgroupTree(root)
}

// removeCgroupTree removes a cgroup and those below it. A cgroup whose last
// processes are still being reaped is busy for a moment: it tries again
// for a few seconds.
func removeCgroupTree(root string) error {
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err = removeCgroupsOnce(root); err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

func removeCgroupsOnce(root string) error {
	var dirs []string
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing cgroup %s: %w", d, err)
		}
	}
	return nil
}
