//go:build linux

package lab

import (
	"fmt"
	"os"
)

// The lab runs parts of itself inside namespaces it made: the init of each Pi,
// the services' listeners, probes from a Pi's network. It does so by starting
// its own executable again with roleEnv set, so that a program that imports
// this package (the piwall-lab command, a test binary) can be the lab without
// shipping a second binary. The init function below turns such a process into
// its role before main or the tests run; it does nothing otherwise.

const roleEnv = "PIWALL_LAB_ROLE"

var roles = map[string]func(args []string) error{
	"pi":       piInit,
	"services": serveServices,
	"probe":    probe,
	"relay":    serveRelays,
}

func init() {
	role := os.Getenv(roleEnv)
	if role == "" {
		return
	}
	f, ok := roles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "piwall lab: unknown role %q\n", role)
		os.Exit(2)
	}
	if err := f(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "piwall lab %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// self is the executable to start again in a role.
func self() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the lab's own executable: %w", err)
	}
	return exe, nil
}
