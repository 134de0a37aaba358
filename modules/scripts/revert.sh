# revert.sh is the dead-man: it puts back piwall's part of the rules as
# saved (others' as they are now), the persisted files as they were, and
# the current generation, unless disarmed ("now": even then, for confirm
# when the applier failed).
cd "$rundir"
[ -e disarmed ] && [ "${1:-}" != now ] && exit 0
# Wait for an applier or a confirm at work; a confirm that came first has
# disarmed it. An applier still to come sees "reverted" and loads nothing.
hold || true
trap release EXIT
[ -e disarmed ] && [ "${1:-}" != now ] && exit 0
touch reverted
failed=
load 4 saved.v4 || failed="$failed iptables-restore"
load 6 saved.v6 || failed="$failed ip6tables-restore"
for fam in 4 6; do
  rules_of $fam
  if [ -f persisted.v$fam ]; then
    cp persisted.v$fam "$rules_new.revert" && mv -f "$rules_new.revert" "$rules"
  elif [ -f "$rules" ] && cmp -s persist.v$fam "$rules"; then
    rm -f "$rules"
  fi
done
if [ -f persisted.sets ]; then
  cp persisted.sets "$sets_file.revert" && mv -f "$sets_file.revert" "$sets_file"
elif [ -f "$sets_file" ] && [ -f persist.sets ] && cmp -s persist.sets "$sets_file"; then
  rm -f "$sets_file"
fi
# The names the host refreshed before (the sets they fill were never
# destroyed during the run).
if [ -f saved.names ]; then
  cp saved.names "$names_dir/conf.revert" && mv -f "$names_dir/conf.revert" "$names_dir/conf"
elif [ -s names ]; then
  rm -f "$names_dir/conf"
fi
# A service confirm enabled for the new files goes back to disabled.
if [ -e enabled ]; then systemctl disable netfilter-persistent.service >/dev/null 2>&1 || failed="$failed systemctl-disable"; fi
if [ -f generation ]; then
  n=$(printf %04d "$(cat generation)")
  sed -i 's/"outcome":"applied"/"outcome":"reverted"/' "$gens/$n.json"
  cat previous_current >"$current"
  if [ -f previous_foreign.re ]; then cp previous_foreign.re "$foreign_state"; else rm -f "$foreign_state"; fi
fi
if [ -n "$failed" ]; then
  echo "failed revert:$failed" >status
else
  echo reverted >status
fi
unlock
