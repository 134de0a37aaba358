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
# restore FAM [OPTION...]
restore() { f=$1; shift; if [ "$f" = 4 ]; then iptables-restore "$@"; else ip6tables-restore "$@"; fi; }
# piwall's part of a filter table is what it owns: the policies of the
# built-in chains and every line that the run's foreign.re does not declare
# someone else's (firewall.Foreign in Go splits a table the same way).
# own_of: piwall's part of the rules on stdin, normalized; the kernel's
# defaults when they have no filter table.
own_of() {
  t=$(sed -n '/^\*filter$/,/^COMMIT$/p')
  [ -n "$t" ] || t=$(printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT')
  printf '%s\n' "$t" | { grep -v -E -f "$rundir/foreign.re" || true; }
}
# own FAM: piwall's part of the family's live rules.
own() { save "$1" 2>/dev/null | normalize | own_of; }
# load_script FAM FILE: the iptables-restore --noflush input that makes
# FILE piwall's part of the live rules: piwall's rules of the built-in
# chains deleted and FILE's appended (others' rules stay first), its
# chains that FILE lacks emptied and deleted, others' chains untouched.
load_script() {
  cur=$(own "$1")
  want=$(own_of <"$2")
  echo '*filter'
  printf '%s\n' "$want" | grep '^:'
  printf '%s\n' "$cur" | sed -n 's/^-A \(INPUT\|FORWARD\|OUTPUT\) /-D \1 /p'
  gone=
  for c in $(printf '%s\n' "$cur" | sed -n 's/^:\([^ ]*\) - .*/\1/p'); do
    printf '%s\n' "$want" | grep -qxF ":$c - [0:0]" || gone="$gone $c"
  done
  for c in $gone; do echo "-F $c"; done
  for c in $gone; do echo "-X $c"; done
  printf '%s\n' "$want" | grep '^-A ' || true
  echo COMMIT
}
# load FAM FILE: loads FILE as piwall's part, in one transaction.
load() { load_script "$1" "$2" | restore "$1" --noflush; }
# rules_of FAM: sets rules to the family's persisted file and rules_new to
# the name it is written under first (builtins: on a busy Pi every process
# costs).
rules_of() {
  if [ "$1" = 4 ]; then rules=$rules_v4 rules_new=$rules_v4_new; else rules=$rules_v6 rules_new=$rules_v6_new; fi
}
# live_is FAM FILE: piwall's part of the family's live rules is FILE.
live_is() { own "$1" | cmp -s - "$2"; }
# hold and release: the run's own lock, taken in turn by the applier,
# confirm and the dead-man, so that whichever comes second sees what the
# first did: flock(1) on fd 6, which the kernel drops with a holder that
# dies (killed, or the Pi rebooted), so there is nothing stale to take
# over. hold fails after 30 s, or when the file cannot be opened (command
# keeps a failed exec from ending the script: the dead-man must go on).
hold() { { command exec 6<"$rundir/busy"; } 2>/dev/null && flock -w 30 6; }
release() { exec 6<&-; }
# lock_is_ours: the lock names this run.
lock_is_ours() {
  [ -f "$lockfile" ] || return 1
  while IFS= read -r l; do [ "$l" = "run=$run" ] && return 0; done <"$lockfile"
  return 1
}
unlock() { if lock_is_ours; then rm -f "$lockfile"; fi; }
