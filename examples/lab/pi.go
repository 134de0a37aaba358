//go:build linux

package lab

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Pi is a process tree in namespaces of its own: a network namespace made
// by `ip netns add` (so tools can name it), and new mount, UTS and PID
// namespaces made when its init starts. The init, PID 1 of the Pi, mounts an
// overlay of the cached base with the Pi's own writable layer, gives it /proc,
// /sys, a private /dev and /run, chroots into it and runs sshd. Every mount
// lives in the Pi's mount namespace, so when the init dies, the kernel ends
// every process of the Pi and drops all its mounts: nothing can leak onto the
// machine, even after a crash.

// piSpec is what a Pi's init needs to know, passed as a JSON file.
type piSpec struct {
	Hostname string
	Lower    string // the cached base root file system
	Upper    string // the Pi's writable layer: it survives a restart
	Work     string // overlayfs's work directory, beside Upper
	Root     string // where the overlay is mounted
	Repo     string // the lab's apt repository, bound read-only at repoMount
	Files    []seedFile
	// Systemd boots the Pi with systemd as PID 1, as a real Raspberry Pi
	// OS does; otherwise the init runs sshd itself (faster, smaller, but
	// no systemd-run).
	Systemd bool
	Cgroup  string // the Pi's own cgroup (v2), the root of its cgroup namespace
	Console string // the file that is the Pi's /dev/console
}

// seedFile is a file (or directory) the init writes into the Pi's root
// before it starts anything: hostname, host key, authorized keys.
type seedFile struct {
	Path     string
	Mode     os.FileMode
	UID, GID int
	Dir      bool
	Link     string // the target of a symbolic link
	Data     string
}

// startPi starts the init of a Pi in netns and returns it. The init keeps
// running after this process exits; it is stopped by killing it.
func startPi(ctx context.Context, netns, specPath, consolePath string, s piSpec) (Proc, error) {
	exe, err := self()
	if err != nil {
		return Proc{}, err
	}
	console, err := os.OpenFile(consolePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer console.Close()
	// `ip netns exec` enters the network namespace and execs the init in
	// place, so the new PID namespace's first process is the init itself.
	cmd := exec.Command("ip", "netns", "exec", netns, exe, specPath)
	cmd.Env = []string{roleEnv + "=pi", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWPID,
	}
	if s.Systemd {
		// systemd wants a cgroup tree of its own: the Pi starts in its own
		// cgroup, which its cgroup namespace makes the root it sees.
		cg, err := os.Open(s.Cgroup)
		if err != nil {
			return Proc{}, fmt.Errorf("the cgroup of %s: %w", netns, err)
		}
		defer cg.Close()
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWCGROUP
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.Fd())
	}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("starting the init of %s: %w", netns, err)
	}
	go cmd.Wait() // reap it when it ends while we still run
	p, err := procOf(cmd.Process.Pid)
	if err != nil {
		return Proc{}, fmt.Errorf("starting the init of %s: it exited at once (see %s): %w", netns, consolePath, err)
	}
	return p, nil
}

// piInit is PID 1 of a Pi. args[0] is the spec file.
func piInit(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: pi SPEC")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var s piSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("reading %s: %w", args[0], err)
	}
	if os.Getpid() != 1 {
		return fmt.Errorf("the init of a Pi must be PID 1 of its own PID namespace, not %d", os.Getpid())
	}
	// Signals are wanted before anything starts, so no child is missed.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2)
	if err := s.mountRoot(); err != nil {
		return err
	}
	if err := s.seed(); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := unix.Chroot(s.Root); err != nil {
		return fmt.Errorf("chroot %s: %w", s.Root, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if s.Systemd {
		// systemd takes over as PID 1 and brings sshd up itself.
		env := []string{"container=piwall-lab", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		return syscall.Exec("/lib/systemd/systemd", []string{"/lib/systemd/systemd", "--log-target=console"}, env)
	}
	sshd, err := startSSHD()
	if err != nil {
		return err
	}
	for sig := range signals {
		switch sig {
		case unix.SIGCHLD:
			reap(&sshd)
		case unix.SIGUSR1:
			// The lab's way to bring back an sshd a test stopped.
			if sshd == 0 {
				if sshd, err = startSSHD(); err != nil {
					fmt.Fprintln(os.Stderr, err)
				}
			}
		case unix.SIGUSR2:
			// The lab's way to cut a Pi's SSH path: new connections are
			// refused, open ones go on.
			if sshd != 0 {
				unix.Kill(sshd, unix.SIGTERM)
			}
		default:
			// Returning ends PID 1, and the kernel ends every other process
			// of the Pi with it.
			return nil
		}
	}
	return nil
}

// startSSHD runs sshd in the foreground of the init, logging to its console.
func startSSHD() (int, error) {
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return 0, err
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		return 0, err
	}
	defer null.Close()
	pid, err := syscall.ForkExec("/usr/sbin/sshd", []string{"/usr/sbin/sshd", "-D", "-e"}, &syscall.ProcAttr{
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
		Files: []uintptr{null.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("starting sshd: %w", err)
	}
	return pid, nil
}

// reap collects every exited child: as PID 1, the init inherits every
// orphan of the Pi (detached timers, daemons of tests).
func reap(sshd *int) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if pid == *sshd {
			fmt.Fprintf(os.Stderr, "sshd exited (%v)\n", ws)
			*sshd = 0
		}
	}
}

// mountRoot assembles the Pi's root file system.
func (s piSpec) mountRoot() error {
	// Nothing mounted from here on may reach the machine's mount table.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	r := s.Root
	type mnt struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}
	mounts := []mnt{
		{"overlay", r, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", s.Lower, s.Upper, s.Work)},
		{"proc", r + "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", r + "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
		{"tmpfs", r + "/dev", "tmpfs", unix.MS_NOSUID, "mode=755,size=64k"},
		{"tmpfs", r + "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=755,size=64m"},
		{s.Repo, r + repoMount, "", unix.MS_BIND, ""},
	}
	for _, m := range mounts {
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.src, m.dst, err)
		}
	}
	if s.Systemd {
		more := []mnt{
			{"cgroup2", r + "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
			{"tmpfs", r + "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		}
		for _, m := range more {
			if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil {
				return fmt.Errorf("mount %s on %s: %w", m.src, m.dst, err)
			}
		}
	}
	// Read-only needs a remount of the bind.
	if err := unix.Mount("", r+repoMount, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("making %s read-only: %w", repoMount, err)
	}
	if err := newBootID(r); err != nil {
		return err
	}
	return makeDev(r+"/dev", s.Console)
}

// newBootID gives the Pi a boot id of this boot's own, as a real reboot
// does: the kernel's is the machine's, the same for every Pi and every
// lab boot. A file in the Pi's /run (a tmpfs of this boot) is bound over
// /proc/sys/kernel/random/boot_id.
func newBootID(root string) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x\n", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	file := root + "/run/.lab-boot_id"
	if err := os.WriteFile(file, []byte(id), 0o444); err != nil {
		return fmt.Errorf("the Pi's boot id: %w", err)
	}
	if err := unix.Mount(file, root+"/proc/sys/kernel/random/boot_id", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the Pi's boot id: %w", err)
	}
	return nil
}

// makeDev fills the Pi's private /dev: the few device nodes programs expect,
// made anew in the Pi's own tmpfs (never bound from the machine's /dev: a
// chown or chmod inside the Pi, as systemd does to /dev/console, would then
// change the machine's nodes), and a devpts of its own so that a terminal
// (ssh -t, sudo with requiretty) works.
func makeDev(dev, console string) error {
	nodes := []struct {
		name         string
		major, minor uint32
	}{
		{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
	}
	for _, n := range nodes {
		path := dev + "/" + n.name
		if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o666); err != nil { // mknod obeys the umask
			return err
		}
	}
	// The console is the Pi's console.log: what systemd prints at boot
	// lands beside the init's own messages.
	if err := os.WriteFile(dev+"/console", nil, 0o600); err != nil {
		return err
	}
	if err := unix.Mount(console, dev+"/console", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the console: %w", err)
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(dev+"/"+d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mounting devpts: %w", err)
	}
	if err := unix.Mount("tmpfs", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	links := map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, dev+"/"+name); err != nil {
			return err
		}
	}
	return nil
}

// seed writes the Pi's own files into its root, through the overlay.
func (s piSpec) seed() error {
	for _, f := range s.Files {
		p := filepath.Join(s.Root, f.Path)
		var err error
		if f.Link != "" {
			os.Remove(p)
			if err := os.Symlink(f.Link, p); err != nil {
				return fmt.Errorf("seeding %s: %w", f.Path, err)
			}
			continue
		}
		if f.Dir {
			err = os.MkdirAll(p, f.Mode)
		} else {
			err = os.WriteFile(p, []byte(f.Data), f.Mode)
		}
		if err == nil {
			err = os.Chmod(p, f.Mode) // WriteFile keeps the mode of a file already there
		}
		if err == nil {
			err = os.Lchown(p, f.UID, f.GID)
		}
		if err != nil {
			return fmt.Errorf("seeding %s: %w", f.Path, err)
		}
	}
	return nil
}
