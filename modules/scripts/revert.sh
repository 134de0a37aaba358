# revert.sh is the dead-man: it puts back piwall's part of the rules as
# saved (others' as they are now), the persisted files as they were, and
# the current generation, unless disarmed ("now": even then, for confirm
# when the applier failed).
cd "$rundir"
[ -e disarmed ] && [ "${1:-}" != now ] && exit 0
load 4 saved.v4
load 6 saved.v6
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
  if [ -f previous_foreign.re ]; then cp previous_foreign.re "$foreign_state"; else rm -f "$foreign_state"; fi
fi
echo reverted >status
unlock
