# refresh.sh is the host's refresher of the plan's names: a systemd timer
# (or, without systemd, a loop of its own) runs it every dns_refresh. For
# each name of $names_dir/conf it asks the host's own resolver and updates
# the name's two address sets, so that the rules, which match the sets,
# follow the name without piwall. The header above it assigns its paths.
#
# - An address the name answers with is added at once; one it no longer
#   answers with stays until grace seconds after it was last seen: a
#   program that resolved the name keeps using its answer for a while, and
#   a pool answers with part of its addresses each time.
# - A lookup that fails changes nothing and is recorded: a set is never
#   emptied by a DNS outage, so an inbound name cannot lock the operator
#   out through one.
# - The sets are persisted (the rules files' directory, as ipset-persistent
#   loads them at boot before the rules) when they changed, and each name's
#   state is kept in $names_dir, which the boot's first refresh starts from.
export LC_ALL=C PATH
cd "$names_dir" 2>/dev/null || exit 0
[ -f conf ] || exit 0
# One refresher at a time; one that finds another at work leaves it be.
exec 7>>refresh.lock
flock -n 7 || exit 0
mkdir -p state
now=$(date +%s)
grace=0
changed=false
while read -r kind a b name; do
  case "$kind" in
    grace) grace=$a; continue ;;
    name) ;;
    *) continue ;;
  esac
  st=state/$a
  # The first refresh starts from what the sets hold (the addresses the
  # plan saw, loaded by the apply or the boot).
  [ -f "$st" ] || { ipset save "$a"; ipset save "$b"; } 2>/dev/null | awk -v now="$now" '$1 == "add" { print $3, now }' >"$st"
  out=$(getent ahosts "$name" 2>&1)
  rc=$?
  addrs=
  if [ $rc = 0 ]; then addrs=$(printf '%s\n' "$out" | awk '$2 == "STREAM" { print $1 }' | sort -u); fi
  if [ -z "$addrs" ]; then
    # Failed: the last-known addresses stay, and the failure is said.
    printf 'refreshed %s\nfailed %s %s\n' "$(sed -n 's/^refreshed //p' "$st.status" 2>/dev/null)" "$now" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-200)" >"$st.status.new"
    mv -f "$st.status.new" "$st.status"
  else
    # Seen now, and seen within the grace window: what the sets hold.
    {
      for x in $addrs; do echo "$x $now"; done
      [ -f "$st" ] && awk -v now="$now" -v grace="$grace" '$2 + grace >= now' "$st"
    } | awk '!seen[$1]++' >"$st.new"
    mv -f "$st.new" "$st"
    printf 'refreshed %s\n' "$now" >"$st.status"
  fi
  # The sets made to hold exactly the state's addresses: new ones added
  # before old ones go, so a set is never without the addresses it keeps.
  want=$(awk '{ print $1 }' "$st" | sort)
  have=$(ipset save "$a" 2>/dev/null | awk '$1 == "add" { print $3 }'; ipset save "$b" 2>/dev/null | awk '$1 == "add" { print $3 }')
  have=$(printf '%s\n' "$have" | sed '/^$/d' | sort)
  [ "$want" = "$have" ] && continue
  changed=true
  {
    printf 'create %s hash:ip family inet hashsize 64 maxelem %s\n' "$a" "$set_maxelem"
    printf 'create %s hash:ip family inet6 hashsize 64 maxelem %s\n' "$b" "$set_maxelem"
    for x in $want; do
      case "$x" in *:*) echo "add $b $x" ;; *) echo "add $a $x" ;; esac
    done
    printf '%s\n' "$have" | while read -r x; do
      [ -n "$x" ] || continue
      printf '%s\n' "$want" | grep -qxF "$x" && continue
      case "$x" in *:*) echo "del $b $x" ;; *) echo "del $a $x" ;; esac
    done
  } | ipset -exist restore
done <conf
# Persisted as ipset-persistent keeps them: piwall's sets as they are now,
# others' as the file held them; only where the persisted rules match
# piwall's sets (confirm wrote them: a failed confirm's empty rules
# directory gets nothing). A read-only disk keeps the last file; the state
# here is what the next refresh starts from.
if { $changed || [ ! -f "$sets_file" ]; } && grep -qs -- "--match-set $set_prefix" "$rules_v4" "$rules_v6"; then
  {
    [ -f "$sets_file" ] && awk -v p="$set_prefix" 'index($2, p) != 1' "$sets_file"
    while read -r kind a b name; do
      [ "$kind" = name ] || continue
      ipset save "$a"; ipset save "$b"
    done <conf
  } >"$sets_file.piwall-refresh" 2>/dev/null && mv -f "$sets_file.piwall-refresh" "$sets_file" 2>/dev/null ||
    rm -f "$sets_file.piwall-refresh" 2>/dev/null
fi
exit 0
