//go:build linux

// Command piwall-lab starts and stops the lab: real Raspberry Pi stand-ins
// (network namespaces with their own Debian root, sshd and iptables) on this
// machine, for piwall's demo and end-to-end tests. It needs root.
//
//	piwall-lab up [--pis N] [--systemd [--profile PI=PROFILE]...] [--rtt DURATION] [--dir DIR] [--cache DIR]
//	piwall-lab status [--dir DIR]
//	piwall-lab reboot [--dir DIR] PI
//	piwall-lab down [--dir DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/piwall/piwall/examples/lab"
	"github.com/piwall/piwall/modules"
)

const usage = `usage:
  piwall-lab up [--pis N] [--systemd] [--rtt D] [--dir DIR]
                                                      start a lab of N Pis (default 3), clearing any left behind
      [--profile PI=PROFILE]...                       give a systemd Pi a profile: fail2ban, hotspot, legacy or docker
  piwall-lab status [--dir DIR]                       the fleet: each Pi, its addresses, whether its sshd answers
  piwall-lab reboot [--dir DIR] PI                    power-cycle a Pi: new network stack, same root file system
  piwall-lab down [--dir DIR]                         stop the lab and remove everything it made
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "piwall-lab: %v\n", err)
		for _, hint := range modules.Hints(err) {
			fmt.Fprintf(os.Stderr, "hint: %s\n", hint)
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("piwall-lab "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", lab.DefaultDir, "the lab's state directory")
	switch args[0] {
	case "up":
		pis := fs.Int("pis", 3, fmt.Sprintf("how many Pis (1 to %d)", lab.MaxPis))
		cacheDir := fs.String("cache", lab.DefaultCacheDir, "where the base root file system and apt repository are kept")
		systemd := fs.Bool("systemd", false, "boot each Pi with systemd as PID 1, as Raspberry Pi OS does")
		rtt := fs.Duration("rtt", 0, "put this round-trip time on the way from this machine to each Pi's sshd (a relay in user space; ssh_config, known_hosts and site.hcl point at it)")
		profiles := map[string]lab.Profile{}
		fs.Func("profile", "PI=PROFILE: a Pi with another owner's rules (fail2ban, hotspot, legacy, docker); repeatable", func(v string) error {
			pi, prof, ok := strings.Cut(v, "=")
			if !ok {
				return fmt.Errorf("%q is not PI=PROFILE", v)
			}
			profiles[pi] = lab.Profile(prof)
			return nil
		})
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		start := time.Now()
		l, err := lab.Up(ctx, lab.Config{Pis: *pis, Dir: *dir, CacheDir: *cacheDir, Log: stderr, Systemd: *systemd, Profiles: profiles, RTT: *rtt})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "lab up: %d Pis in %.1fs\n", len(l.Pis), time.Since(start).Seconds())
		return status(l, stdout)
	case "status":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		l, err := lab.Load(*dir)
		if err != nil {
			return err
		}
		return status(l, stdout)
	case "reboot":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		positional := fs.Args()
		if len(positional) != 1 {
			return fmt.Errorf("which Pi? (piwall-lab reboot pi-01)")
		}
		l, err := lab.Load(*dir)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := l.Reboot(ctx, positional[0]); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s rebooted in %.1fs\n", positional[0], time.Since(start).Seconds())
		return nil
	case "down":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		start := time.Now()
		if err := lab.Down(ctx, *dir); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "lab down in %.1fs\n", time.Since(start).Seconds())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// status prints the fleet and how to reach it.
func status(l *lab.Lab, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PI\tIPV4\tIPV6\tPROFILE\tSSH")
	for _, p := range l.Pis {
		prof := string(p.Profile)
		if prof == "" {
			prof = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Addrs.V4, p.Addrs.V6, prof, sshState(p))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nssh:  ssh -F %s %s\nplan: %s\n", l.SSHConfig(), l.Pis[0].Name, l.Plan())
	return nil
}

func sshState(p lab.Pi) string {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(p.Addrs.V4.String(), "22"), 2*time.Second)
	if err != nil {
		return "down: " + err.Error()
	}
	c.Close()
	return "up"
}
