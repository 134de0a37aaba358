# prepare.sh runs over the first connection: lock, check, install, save,
# test, arm the dead-man, start the applier. Each step comes before the
# next because the next relies on it: nothing is armed before the saved
# rules exist, nothing is applied before the dead-man is armed.
set -eu
mkdir -p "$gens" "$rundir"
chmod 700 "$state"
# The run's own lock (hold in common.sh), there before anyone holds it:
# it is opened read-only, which a read-only disk still allows.
: >"$rundir/busy"
# Everything goes to a log, so that a connection that drops (piwall killed,
# the network gone) cannot stop this script half-way through a failed
# write; what piwall must read goes to fd 3, and on failure the log's tail
# to fd 4 (stderr).
exec 3>&1 4>&2 >>"$rundir/prepare.log" 2>&1
say() { echo "$*" >&3 2>/dev/null || true; }
policy_ours=false aside=
finish() {
  st=$?
  if $policy_ours; then rm -f "$policy_rc_d"; fi
  if [ $st -ne 0 ]; then
    # A failed prepare leaves the host as it found it.
    for f in $aside; do mv -f "$f.before-piwall-$run" "$f"; done
    tail -n 20 "$rundir/prepare.log" >&4 2>/dev/null || true
    unlock
  fi
  exit $st
}
trap finish EXIT
# dash runs no EXIT trap for a signal it does not trap (a shutdown's TERM).
trap 'exit 143' TERM INT
fail() { echo "piwall: $*"; exit 1; }

# 1. The lock: one change at a time. Its expiry is on the boot clock
# (uptime), which no NTP step moves; a lock of an earlier boot is stale at
# once, its run having died with the boot (a transient timer does not
# survive one). A stale lock is taken over, and said so. Judging the lock
# and taking it happen under flock(1) on a guard file: two runs that see
# one stale lock cannot both take it, and a run killed half-way leaves no
# guard behind (the kernel drops a dead process's flock).
now=$(date +%s)
read -r boot <"$boot_id"
read -r up _ <"$uptime"
up=${up%.*}
lock_stale() {
  b= u= e=
  while IFS='=' read -r k v; do
    case "$k" in boot) b=$v ;; until) u=$v ;; expires) e=$v ;; esac
  done <"$lockfile"
  if [ -n "$b" ]; then
    [ "$b" != "$boot" ] && return 0
    [ -n "$u" ] && [ "$u" -lt "$up" ] 2>/dev/null && return 0
    return 1
  fi
  # A lock of an older piwall: its wall-clock expiry.
  [ -n "$e" ] && [ "$e" -lt "$now" ] 2>/dev/null
}
exec 5>>"$state/lock.guard"
flock -w 30 5 || fail "another run held $state/lock.guard for 30 s"
if [ -f "$lockfile" ]; then
  if lock_stale; then
    say "stale-lock $(tr '\n' ' ' <"$lockfile")"
  else
    echo "locked by: $(tr '\n' ' ' <"$lockfile")"
    exit "$exit_locked"
  fi
fi
printf 'run=%s\noperator=%s\nsince=%s\nexpires=%s\nboot=%s\nuntil=%s\n' \
  "$run" "$operator" "$now" "$((now + lock_ttl))" "$boot" "$((up + lock_ttl))" >"$lockfile.$run"
mv -f "$lockfile.$run" "$lockfile"
exec 5>&-

# 2. The run's files, as uploaded, checked.
cp "$upload"/* "$rundir/"
rm -rf "$upload"
cd "$rundir"
sha256sum --quiet -c SHA256SUMS || fail "the uploaded files do not match their checksums"

# 3. Rules files that nothing loads at boot yet (netfilter-persistent
# missing, without its plugins, or disabled; left by a removed package or
# baked into an image) are set aside: installing or enabling the service
# would load them, before the dead-man or at the next boot. They are put
# back only if prepare fails before anything is installed.
if [ "$rules_inert" = true ]; then
  for f in "$rules_v4" "$rules_v6"; do
    if [ -f "$f" ]; then
      mv -f "$f" "$f.before-piwall-$run"
      aside="$aside $f"
      say "set-aside $f $f.before-piwall-$run"
    fi
  done
fi

# iptables and netfilter-persistent, from apt, without questions
# (--reinstall: a plugin deleted from an installed package comes back),
# and with policy-rc.d forbidding services to start while apt runs
# (unless the host has a policy of its own; one piwall left, killed
# half-way, is replaced). Only piwall loads rules, under its dead-man.
# Rules that match names need ipset, and ipset-persistent, whose plugin
# loads the sets at boot before the rules that match them.
sets_needed=false
[ -s sets ] && sets_needed=true
if [ "$install" = true ] || ! command -v iptables-restore >/dev/null 2>&1 || ! command -v netfilter-persistent >/dev/null 2>&1 ||
  { $sets_needed && ! command -v ipset >/dev/null 2>&1; }; then
  if [ -f "$policy_rc_d" ] && grep -q '^# piwall: ' "$policy_rc_d"; then rm -f "$policy_rc_d"; fi
  if [ ! -e "$policy_rc_d" ] && printf '#!/bin/sh\n# piwall: no service starts while it installs iptables\nexit 101\n' >"$policy_rc_d"; then
    policy_ours=true
    chmod 755 "$policy_rc_d"
  fi
  export DEBIAN_FRONTEND=noninteractive
  printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' 'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections
  # Fetching has apt_limit seconds each (a hung mirror must not outlast
  # the lock), and waits up to a minute for dpkg's lock
  # (unattended-upgrades); dpkg itself is never cut short, which would
  # leave it interrupted.
  timeout "$apt_limit" apt-get -o DPkg::Lock::Timeout=60 update -qq || fail "apt-get update failed (or took over $apt_limit s)"
  pkgs="iptables netfilter-persistent iptables-persistent"
  if $sets_needed; then pkgs="$pkgs ipset ipset-persistent"; fi
  timeout "$apt_limit" apt-get -o DPkg::Lock::Timeout=60 install -y -qq --reinstall --download-only $pkgs </dev/null ||
    fail "downloading iptables failed (or took over $apt_limit s)"
  # From here on the packages may be on the host: what was set aside stays so.
  aside=
  apt-get -o DPkg::Lock::Timeout=60 install -y -qq --reinstall $pkgs </dev/null || fail "installing iptables failed"
  if $policy_ours; then rm -f "$policy_rc_d"; policy_ours=false; fi
  say installed
fi

# 4. piwall's part of the live rules, saved for the dead-man (own: the
# kernel's all-ACCEPT defaults on a host whose tables were never loaded,
# where restoring nothing would leave the new rules in place).
for fam in 4 6; do
  out=$(save $fam)
  printf '%s\n' "$out" | normalize | own_of >saved.v$fam
done
# piwall's part must still be what the change was planned against:
# digests of its text, as the plan took them. Others' rules may change.
if [ -n "$expect_v4$expect_v6" ]; then
  set -- $(sha256sum saved.v4 saved.v6)
  if [ -n "$expect_v4" ] && [ "$1" != "$expect_v4" ]; then echo "the IPv4 rules changed since the plan"; exit "$exit_drift"; fi
  if [ -n "$expect_v6" ] && [ "$3" != "$expect_v6" ]; then echo "the IPv6 rules changed since the plan"; exit "$exit_drift"; fi
fi
for fam in 4 6; do
  rules_of $fam
  if [ -f "$rules" ]; then cp "$rules" persisted.v$fam; fi
done
# The names the host refreshes now, and the sets persisted: the dead-man
# puts them back too.
if [ -f "$names_dir/conf" ]; then cp "$names_dir/conf" saved.names; fi
: >saved.sets
if command -v ipset >/dev/null 2>&1; then
  for s in $(ipset list -n 2>/dev/null); do
    case "$s" in "$set_prefix"*) ipset save "$s" >>saved.sets ;; esac
  done
fi
if [ -f "$sets_file" ]; then cp "$sets_file" persisted.sets; fi

# The address sets the new rules match, made (or kept, with the plan's
# addresses added) before the rules are tested: a rule that matches a
# missing set does not load. Sets hold addresses only piwall's rules
# match; the refresher keeps them true from here on.
if $sets_needed; then
  ipset -exist restore <sets || { echo "ipset restore refused the address sets"; exit "$exit_test_failed"; }
fi

# 5. The new rules, tested by the kernel without loading them, as the
# applier will load them. How long the test took (boot clock, before and
# after) tells piwall how long the applier's load will take.
read -r t0 _ <"$uptime"
load_script 4 new.v4 | restore 4 --test --noflush || { echo "iptables-restore --test refused the IPv4 rules"; exit "$exit_test_failed"; }
load_script 6 new.v6 | restore 6 --test --noflush || { echo "ip6tables-restore --test refused the IPv6 rules"; exit "$exit_test_failed"; }
read -r t1 _ <"$uptime"
say "tested $t0 $t1"

# 6. The dead-man, armed before anything changes: it restores the saved
# rules after the delay unless confirm disarms it. A systemd timer survives
# anything that happens to this connection and to piwall; without systemd,
# a process in a session of its own does.
if [ -d "$systemd_dir" ] && command -v systemd-run >/dev/null 2>&1; then
  systemd-run --quiet --unit="piwall-revert-$run" --on-active="${revert_after}s" --timer-property=AccuracySec=1s /bin/sh "$rundir/revert.sh" 3>&- 4>&-
  echo "deadman=systemd" >deadman
else
  setsid sh -c "sleep $revert_after; exec sh '$rundir/revert.sh'" </dev/null >/dev/null 2>&1 3>&- 4>&- &
  echo "deadman=process $!" >deadman
fi
read -r armed <deadman
say "armed $armed"

# 7. The applier, detached: it waits for this script to end, so that its
# result reaches piwall before the new rules can freeze this connection.
# Its descriptors are closed: sshd ends the session only when every
# holder of its output is gone.
setsid sh "$rundir/apply.sh" $$ </dev/null >"$rundir/apply.log" 2>&1 3>&- 4>&- &
say started
