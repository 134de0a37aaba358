package modules

import "strings"

// Quote makes s one word for a POSIX shell, whatever it holds: it is the one
// place where a value reaches a remote shell, and every value that does goes
// through it. The result is s in single quotes, each ' written as '\”.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
