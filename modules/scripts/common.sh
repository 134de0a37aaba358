# common.sh: what every script of a run shares. The header above it assigns
# every path, exit status and delay the scripts use (modules/scripts.go
# names each once), all quoted; nothing below names a path of its own.
#
# A known PATH (a user's PATH on Debian lacks the system directories) and
# the C locale, so output can be parsed.
export LC_ALL=C PATH
# A dropped connection must not stop a script half-way.
trap '' HUP PIPE
# normalize: iptables-save output without its comment lines and counters,
# the form piwall compares and digests.
normalize() { sed -e '/^#/d' -e 's/^\(:[^ ]* [^ ]*\) \[[0-9]*:[0-9]*\]$/\1 [0:0]/'; }
save() { if [ "$1" = 4 ]; then iptables-save; else ip6tables-save; fi; }
restore() { if [ "$1" = 4 ]; then iptables-restore; else ip6tables-restore; fi; }
# rules_of FAM: sets rules to the family's persisted file and rules_new to
# the name it is written under first (builtins: on a busy Pi every process
# costs).
rules_of() {
  if [ "$1" = 4 ]; then rules=$rules_v4 rules_new=$rules_v4_new; else rules=$rules_v6 rules_new=$rules_v6_new; fi
}
# live_is FAM FILE: the live rules of the family are FILE's, normalized.
live_is() { save "$1" 2>/dev/null | normalize | cmp -s - "$2"; }
# lock_is_ours: the lock names this run.
lock_is_ours() {
  [ -f "$lockfile" ] || return 1
  while IFS= read -r l; do [ "$l" = "run=$run" ] && return 0; done <"$lockfile"
  return 1
}
unlock() { if lock_is_ours; then rm -f "$lockfile"; fi; }
