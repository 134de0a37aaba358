# apply.sh, the applier, loads piwall's part of the new rules, each family
# atomically, once prepare (pid $1) has ended and its answer had time to
# leave the host.
cd "$rundir"
while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
sleep "$apply_delay"
if ! hold; then echo "failed: the run's lock" >status; exit 1; fi
trap release EXIT
# The dead-man came first: nothing to load any more.
[ -e reverted ] && exit 0
echo applying >status
if ! load 4 new.v4; then
  echo "failed iptables-restore" >status
  exit 1
fi
if ! load 6 new.v6; then
  load 4 saved.v4
  echo "failed ip6tables-restore" >status
  exit 1
fi
read -r up _ </proc/uptime
echo "$up" >applied_at
echo applied >status
