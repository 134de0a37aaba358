# revert.sh is the dead-man: it puts back the saved rules, the persisted
# files as they were, and the current generation, unless disarmed ("now":
# even then, for confirm when the applier failed).
cd "$rundir"
[ -e disarmed ] && [ "${1:-}" != now ] && exit 0
iptables-restore <saved.v4
ip6tables-restore <saved.v6
for fam in 4 6; do
  rules_of $fam
  if [ -f persisted.v$fam ]; then
    cp persisted.v$fam "$rules_new" && mv -f "$rules_new" "$rules"
  elif [ -f "$rules" ] && cmp -s new.v$fam "$rules"; then
    rm -f "$rules"
  fi
done
if [ -f generation ]; then
  n=$(printf %04d "$(cat generation)")
  sed -i 's/"outcome":"applied"/"outcome":"reverted"/' "$gens/$n.json"
  cat previous_current >"$current"
fi
echo reverted >status
unlock
