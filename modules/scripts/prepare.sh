# prepare.sh runs over the first connection: lock, check, install, save,
# test, arm the dead-man, start the applier. Each step comes before the
# next because the next relies on it: nothing is armed before the saved
# rules exist, nothing is applied before the dead-man is armed.
set -eu
mkdir -p "$gens" "$rundir"
chmod 700 "$state"
# Everything goes to a log, so that a connection that drops (piwall killed,
# the network gone) cannot stop this script half-way through a failed
# write; what piwall must read goes to fd 3, and on failure the log's tail
# to fd 4 (stderr).
exec 3>&1 4>&2 >>"$rundir/prepare.log" 2>&1
say() { echo "$*" >&3 2>/dev/null || true; }
finish() {
  st=$?
  if [ $st -ne 0 ]; then
    tail -n 20 "$rundir/prepare.log" >&4 2>/dev/null || true
    unlock
  fi
  exit $st
}
trap finish EXIT
fail() { echo "piwall: $*"; exit 1; }

# 1. The lock: one change at a time. A lock past its expiry is stale (its
# run was killed and nothing released it) and is taken over.
now=$(date +%s)
take_lock() { ( set -C; printf 'run=%s\noperator=%s\nsince=%s\nexpires=%s\n' "$run" "$operator" "$now" "$((now + lock_ttl))" >"$lockfile" ) 2>/dev/null; }
if ! take_lock; then
  expires=$(sed -n 's/^expires=//p' "$lockfile" 2>/dev/null || true)
  if [ -n "$expires" ] && [ "$expires" -lt "$now" ]; then
    say "stale-lock $(tr '\n' ' ' <"$lockfile")"
    rm -f "$lockfile"
    take_lock || { cat "$lockfile"; exit "$exit_locked"; }
  else
    echo "locked by: $(tr '\n' ' ' <"$lockfile")"
    exit "$exit_locked"
  fi
fi

# 2. The run's files, as uploaded, checked.
cp "$upload"/* "$rundir/"
rm -rf "$upload"
cd "$rundir"
sha256sum --quiet -c SHA256SUMS || fail "the uploaded files do not match their checksums"

# 3. iptables and netfilter-persistent, from apt, without questions.
if [ "$install" = true ] || ! command -v iptables-restore >/dev/null 2>&1 || ! command -v netfilter-persistent >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' 'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq iptables netfilter-persistent iptables-persistent </dev/null || fail "installing iptables failed"
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

# 5. The new rules, tested by the kernel without loading them, as the
# applier will load them.
load_script 4 new.v4 | restore 4 --test --noflush || { echo "iptables-restore --test refused the IPv4 rules"; exit "$exit_test_failed"; }
load_script 6 new.v6 | restore 6 --test --noflush || { echo "ip6tables-restore --test refused the IPv6 rules"; exit "$exit_test_failed"; }

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
