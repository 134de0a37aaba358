package lab

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// A LOG rule inside a network namespace reaches the kernel log only when
// the initial namespace's net.netfilter.nf_log_all_netns is 1 (default 0:
// nothing a lab Pi's log_drops logs would be seen). The lab sets it while
// it runs and puts the machine's value back when it stops. The value is
// kept in nfLogSaved, outside the lab's directory, so that a lab that
// crashed leaves it for the next Down to restore, and a second Up does not
// take the lab's 1 for the machine's.
const (
	nfLogSysctl = "/proc/sys/net/netfilter/nf_log_all_netns"
	nfLogSaved  = "/run/piwall-lab-nf_log_all_netns"
)

// enableNetnsLog saves the machine's value, unless one is saved already,
// and sets the sysctl to 1.
func enableNetnsLog() error {
	if _, err := os.Stat(nfLogSaved); errors.Is(err, os.ErrNotExist) {
		old, err := os.ReadFile(nfLogSysctl)
		if err != nil {
			return fmt.Errorf("reading nf_log_all_netns: %w", err)
		}
		if err := os.WriteFile(nfLogSaved, old, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(nfLogSysctl, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("setting nf_log_all_netns: %w", err)
	}
	return nil
}

// restoreNetnsLog puts the saved value back and forgets it; with none
// saved it does nothing.
func restoreNetnsLog() error {
	old, err := os.ReadFile(nfLogSaved)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if v := strings.TrimSpace(string(old)); v != "0" && v != "1" {
		return fmt.Errorf("%s holds %q, not a value of nf_log_all_netns", nfLogSaved, v)
	}
	if err := os.WriteFile(nfLogSysctl, old, 0o644); err != nil {
		return fmt.Errorf("restoring nf_log_all_netns: %w", err)
	}
	return os.Remove(nfLogSaved)
}
