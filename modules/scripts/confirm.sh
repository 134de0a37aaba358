# confirm.sh runs over the new connection. It proves that connection was
# opened after the new rules went live and that they are the ones live,
# then persists them, records the generation, disarms the dead-man and
# releases the lock, in that order: were it stopped half-way, the dead-man
# undoes all of it, so the host ends with the old rules live and persisted,
# or the new rules live and persisted. With "status", it only prints the
# run's status and whether the saved rules are live again; with "rtt=CS",
# the round-trip time piwall measured to the host, in hundredths of a
# second, it proves that much more of the connection (below).
cd "$rundir"
mode= rtt=0
case "${1:-}" in
  status) mode=status ;;
  rtt=*) rtt=${1#rtt=} ;;
esac
case "$rtt" in '' | *[!0-9]*) echo "rtt=$rtt is not a number of hundredths of a second" >&2; exit 2 ;; esac
# The applier may still be at work when this connection arrives. Builtins
# (read, case, $((...))) where they do: on a busy Pi every process costs.
i=0
while :; do
  st=pending
  if [ -f status ]; then read -r st <status; fi
  case "$st" in applying|pending) ;; *) break ;; esac
  i=$((i + 1)); [ $i -gt 100 ] && break
  sleep 0.1
done
if [ "$mode" = status ]; then
  echo "status=$st"
  echo "live-is-saved=$(live_is 4 saved.v4 && live_is 6 saved.v6 && echo yes || echo no)"
  exit 0
fi
case "$st" in
  applied | confirmed) ;;
  failed*) echo "$st: $(tail -n 3 apply.log | tr '\n' ' ')" >&2; touch disarmed; sh "$rundir/revert.sh" now >/dev/null 2>&1; exit "$exit_apply_failed" ;;
  *) echo "status $st" >&2; exit "$exit_not_applied" ;;
esac
# From here on, confirm holds the run: the dead-man waits for it, and
# sees it disarmed, or not. Under the lock the status is read again.
if ! hold; then echo "the run is busy" >&2; exit "$exit_not_applied"; fi
trap release EXIT
read -r st <status
case "$st" in
  # Confirmed already (a second confirm of the run): the same answer.
  confirmed) echo "confirmed generation=$(cat generation)"; exit 0 ;;
  applied) ;;
  *) echo "status $st" >&2; exit "$exit_not_applied" ;;
esac

# This connection must be newer than the rules: the sshd process that
# serves it (the nearest "sshd: " ancestor that is not the listener)
# started after applied_at, and by a round trip at least, since sshd
# starts once the TCP handshake ends, a round trip after its first packet
# arrived: that packet, too, came after the new rules went live. Start
# times are clock ticks since boot, the 20th field of /proc/PID/stat
# after the command name.
pid=$$ conn= started=
while [ "$pid" -gt 1 ]; do
  cmd=
  IFS= read -r cmd </proc/$pid/cmdline 2>/dev/null || true
  read -r stat </proc/$pid/stat 2>/dev/null || break
  set -- ${stat##*) }
  case "$cmd" in
    *"[listener]"*) ;;
    "sshd: "*|"sshd-session: "*) conn=$pid started=${20}; break ;;
  esac
  pid=$2
done
if [ -z "$conn" ]; then echo "no sshd process above this command" >&2; exit "$exit_not_new"; fi
# applied_at is /proc/uptime's seconds with two decimals.
read -r at <applied_at
hz=$(getconf CLK_TCK)
if [ $((started * 100)) -lt $(((${at%.*} * 100 + 1${at#*.} - 100 + rtt) * hz)) ]; then
  echo "this connection was opened before the new rules went live" >&2
  exit "$exit_not_new"
fi
for fam in 4 6; do
  if ! live_is $fam new.v$fam; then
    echo "the live IPv$fam rules are not the new ones" >&2
    exit "$exit_not_applied"
  fi
done

# Persist piwall's part, and the other tables as the file held them (a
# hotspot's nat), never others' filter rules: their owners make them
# again at start. Each file is made in the run's directory, copied aside
# in the rules directory, flushed, renamed over, and read back: a
# read-only or full disk fails the confirmation, the dead-man stays armed
# and reverts.
persist_failed() {
  rm -f "$rules_v4_new" "$rules_v6_new" "$sets_file_new"
  echo "saving the rules failed: $*" >&2
  exit "$exit_persist_failed"
}
for fam in 4 6; do
  rules_of $fam
  {
    cat new.v$fam
    if [ -f persisted.v$fam ]; then sed '/^\*filter$/,/^COMMIT$/d' persisted.v$fam; fi
  } >persist.v$fam
done
e=$(mkdir -p "$rules_dir" 2>&1) || persist_failed "$e"
for fam in 4 6; do
  rules_of $fam
  e=$(cp persist.v$fam "$rules_new" 2>&1) || persist_failed "$e"
  e=$(sync "$rules_new" 2>&1) || persist_failed "$e"
done
for fam in 4 6; do
  rules_of $fam
  e=$(mv -f "$rules_new" "$rules" 2>&1) || persist_failed "$e"
done
e=$(sync "$rules_dir" 2>&1) || persist_failed "$e"
for fam in 4 6; do
  rules_of $fam
  cmp -s persist.v$fam "$rules" || persist_failed "$rules, read back, is not what was applied"
done
# The address sets the rules match, persisted where ipset-persistent loads
# them at boot, before the rules: piwall's sets as they are now, others'
# as the file held them; written the same way.
if [ -s names ] || { [ -f persisted.sets ] && awk -v p="$set_prefix" 'index($2, p) == 1 { f = 1 } END { exit !f }' persisted.sets; }; then
  {
    if [ -f persisted.sets ]; then awk -v p="$set_prefix" 'index($2, p) != 1' persisted.sets; fi
    while read -r kind a b name; do
      if [ "$kind" = name ]; then ipset save "$a" && ipset save "$b"; fi
    done <names
  } >persist.sets || persist_failed "reading the address sets"
  e=$(cp persist.sets "$sets_file_new" 2>&1) || persist_failed "$e"
  e=$(sync "$sets_file_new" 2>&1) || persist_failed "$e"
  e=$(mv -f "$sets_file_new" "$sets_file" 2>&1) || persist_failed "$e"
  e=$(sync "$rules_dir" 2>&1) || persist_failed "$e"
  cmp -s persist.sets "$sets_file" || persist_failed "$sets_file, read back, is not what was made"
fi
# The names' refresher, started for the new names: a systemd timer (its
# first run at boot comes after netfilter-persistent has loaded the sets
# and rules), else a loop of its own. Before the disarm: were confirm
# stopped, the dead-man puts the names the host refreshed back.
if [ -s names ]; then
  e=$(mkdir -p "$names_dir" 2>&1 && cp refresh.sh "$names_dir/refresh.sh.new" && mv -f "$names_dir/refresh.sh.new" "$names_dir/refresh.sh" &&
    cp names "$names_dir/conf.new" && mv -f "$names_dir/conf.new" "$names_dir/conf" 2>&1) || persist_failed "installing the names' refresher: $e"
  read -r _ every <names
  if [ -d "$systemd_dir" ]; then
    printf '[Unit]\nDescription=piwall: refresh the address sets of the plan'"'"'s names\nAfter=netfilter-persistent.service network-online.target\n\n[Service]\nType=oneshot\nExecStart=/bin/sh %s\n' \
      "$names_dir/refresh.sh" >"$unit_dir/piwall-names.service" &&
      printf '[Unit]\nDescription=piwall: refresh the address sets of the plan'"'"'s names every %ss\n\n[Timer]\nOnBootSec=10s\nOnUnitActiveSec=%ss\nAccuracySec=1s\n\n[Install]\nWantedBy=timers.target\n' \
        "$every" "$every" >"$unit_dir/piwall-names.timer" || persist_failed "writing the refresher's units in $unit_dir"
    e=$(timeout 20 systemctl daemon-reload 2>&1 && timeout 20 systemctl enable piwall-names.timer 2>&1 && timeout 20 systemctl restart piwall-names.timer 2>&1) ||
      persist_failed "starting the names' refresher: $e"
  else
    if [ -f "$names_dir/loop.pid" ]; then kill "$(cat "$names_dir/loop.pid")" 2>/dev/null || true; fi
    setsid sh -c "while :; do sh '$names_dir/refresh.sh'; sleep $every; done" </dev/null >/dev/null 2>&1 3>&- 4>&- 6>&- &
    echo $! >"$names_dir/loop.pid"
  fi
elif [ -f "$names_dir/conf" ]; then
  # Nothing to refresh any more: it stops with the run (below).
  rm -f "$names_dir/conf"
fi
# The boot loads them only with netfilter-persistent enabled.
# Recorded first: the dead-man disables it again if confirm stops short.
if [ "$enable_restore" = true ]; then
  : >enabled
  e=$(timeout 20 systemctl enable netfilter-persistent.service 2>&1) || persist_failed "enabling netfilter-persistent: $e"
fi
# Record the generation.
cur=0
if [ -f "$current" ]; then read -r cur <"$current"; fi
next=$((cur + 1))
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The rules replaced are a generation of their own unless they are the
# current one already.
c=$(printf %04d "$cur")
if [ "$cur" -eq 0 ] || ! cmp -s saved.v4 "$gens/$c.v4" || ! cmp -s saved.v6 "$gens/$c.v6"; then
  n=$(printf %04d "$next")
  cp saved.v4 "$gens/$n.v4"; cp saved.v6 "$gens/$n.v6"; cp saved.sets "$gens/$n.sets"
  if [ -f saved.names ]; then cp saved.names "$gens/$n.names"; else : >"$gens/$n.names"; fi
  printf '{"number":%d,"time":"%s","operator":"","kind":"found","plan":"","run":"%s","outcome":"replaced"}\n' "$next" "$now" "$run" >"$gens/$n.json"
  next=$((next + 1))
fi
n=$(printf %04d "$next")
cp new.v4 "$gens/$n.v4"; cp new.v6 "$gens/$n.v6"; cp sets "$gens/$n.sets"; cp names "$gens/$n.names"
sed -e "s/\"number\":0/\"number\":$next/" -e "s/\"time\":\"[^\"]*\"/\"time\":\"$now\"/" meta.json >"$gens/$n.json"
echo "$cur" >previous_current
echo "$next" >generation
echo "$next" >"$current.tmp" && mv -f "$current.tmp" "$current"
# The declaration of others' rules now in force, for the next rollback.
if [ -f "$foreign_state" ]; then cp "$foreign_state" previous_foreign.re; fi
cp foreign.re "$foreign_state.tmp" && mv -f "$foreign_state.tmp" "$foreign_state"
# Disarm and unlock.
touch disarmed
read -r deadman <deadman
case "$deadman" in
  deadman=systemd) systemctl stop "piwall-revert-$run.timer" >/dev/null 2>&1 || true ;;
  "deadman=process "*)
    pkill -P "${deadman#deadman=process }" sleep 2>/dev/null || true
    kill "${deadman#deadman=process }" 2>/dev/null || true ;;
esac
echo confirmed >status
unlock
# The change is final: what the old names left behind goes. No name left:
# the refresher and its state; and every set of piwall's that the live
# rules no longer match (destroy refuses a set a rule matches).
if [ ! -s names ]; then
  if [ -d "$systemd_dir" ] && [ -f "$unit_dir/piwall-names.timer" ]; then
    systemctl disable --now piwall-names.timer >/dev/null 2>&1 || true
    rm -f "$unit_dir/piwall-names.timer" "$unit_dir/piwall-names.service"
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
  if [ -f "$names_dir/loop.pid" ]; then kill "$(cat "$names_dir/loop.pid")" 2>/dev/null || true; fi
  rm -rf "$names_dir"
fi
if command -v ipset >/dev/null 2>&1; then
  for s in $(ipset list -n 2>/dev/null); do
    case "$s" in "$set_prefix"*) grep -q " $s " names 2>/dev/null || ipset destroy "$s" 2>/dev/null || true ;; esac
  done
fi
echo "confirmed generation=$next"
