#!/bin/sh
# The floor: the bare minimum, done safely, with plain OpenSSH, every Pi in
# parallel. Per Pi: install iptables if missing, save the live rules (an
# all-ACCEPT ruleset when there are none), upload the new ones, arm a revert
# (a detached sleep-then-restore), apply detached, then over a NEW connection
# that sees the new rules live: disarm and persist. A Pi whose live rules are
# already the desired ones is left alone.
#
# usage: floor.sh SSH_CONFIG RULES_DIR HOST...
# RULES_DIR holds HOST.v4 and HOST.v6, iptables-restore text. A Pi that
# fails is named on stderr with what its commands said.
set -u
cfg=$1 dir=$2
shift 2
# A connection caught by the new rules may freeze for good: keepalives
# drop it after about 6 s.
ssh() { command ssh -o ServerAliveInterval=2 -o ServerAliveCountMax=3 "$@"; }
scp() { command scp -o ServerAliveInterval=2 -o ServerAliveCountMax=3 "$@"; }

one() {
	h=$1
	mkdir -p "$dir/$h.d" && cp "$dir/$h.v4" "$dir/$h.d/want.v4" && cp "$dir/$h.v6" "$dir/$h.d/want.v6" &&
	ssh -F "$cfg" "$h" 'mkdir -p /tmp/floor' &&
	scp -q -F "$cfg" "$dir/$h.d/want.v4" "$dir/$h.d/want.v6" "$h:/tmp/floor/" || { echo "upload failed" >&2; return 1; }
	out=$(ssh -F "$cfg" "$h" 'sudo -n sh -es' <<'SCRIPT'
cd /tmp/floor
if [ ! -e /usr/sbin/iptables-restore ] || [ ! -e /usr/sbin/netfilter-persistent ]; then
	apt-get update -qq
	printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' \
		'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables netfilter-persistent iptables-persistent >/dev/null
fi
strip() { sed -e '/^#/d' -e 's/ \[[0-9]*:[0-9]*\]$//' "$@"; }
iptables-save >old.v4
ip6tables-save >old.v6
if [ "$(strip old.v4)" = "$(strip want.v4)" ] && [ "$(strip old.v6)" = "$(strip want.v6)" ] &&
	cmp -s /etc/iptables/rules.v4 want.v4 && cmp -s /etc/iptables/rules.v6 want.v6; then
	echo unchanged
	exit 0
fi
for f in 4 6; do
	[ -s old.v$f ] || printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' >old.v$f
	mv want.v$f new.v$f
done
iptables-restore --test new.v4 && ip6tables-restore --test new.v6
rm -f applied
setsid nohup sh -c 'echo $$ >deadman; sleep 30; iptables-restore <old.v4; ip6tables-restore <old.v6' >/dev/null 2>&1 </dev/null &
setsid nohup sh -c 'sleep 0.2; iptables-restore <new.v4 && ip6tables-restore <new.v6 && touch applied' >/dev/null 2>&1 </dev/null &
echo applying
SCRIPT
) || { echo "prepare failed" >&2; return 1; }
	[ "$out" = unchanged ] && return 0
	# A new connection each try; it counts only once it sees the rules live.
	for try in 1 2 3 4 5 6 7 8 9 10; do
		ssh -F "$cfg" "$h" 'sudo -n sh -ec "cd /tmp/floor; test -e applied || exit 3
kill -- -\$(cat deadman); mkdir -p /etc/iptables; cp new.v4 /etc/iptables/rules.v4; cp new.v6 /etc/iptables/rules.v6; rm -f /tmp/floor/*"' && return 0
		sleep 0.2
	done
	echo "no new connection confirmed" >&2
	return 1
}

fail=0 pids=
for h in "$@"; do
	one "$h" >/dev/null 2>"$dir/$h.err" &
	pids="$pids $!"
done
for pid in $pids; do
	if ! wait "$pid"; then
		h=$1
		echo "floor: $h failed: $(tr '\n' ' ' <"$dir/$h.err")" >&2
		fail=1
	fi
	shift
done
exit $fail
