#!/usr/bin/env bash
# piwall's main job, end to end, against the lab on this machine: start a lab
# of three Pis, show the fleet as an operator reaches it, stop the lab. Run it
# as root: sudo bash examples/lab/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/setup

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/piwall" ./cmd/piwall
go build -o "$bin/piwall-lab" ./cmd/piwall-lab
export PATH="$bin:$PATH"
dir=/var/lib/piwall-lab

step() { printf '\n== %s\n' "$*"; }

piwall version
step "start the lab"
trap 'piwall-lab down; rm -rf "$bin"' EXIT
piwall-lab up --pis 3 --dir "$dir"

step "the fleet, over SSH with host keys checked (ssh -F $dir/ssh_config)"
for pi in pi-01 pi-02 pi-03; do
  ssh -F "$dir/ssh_config" -o BatchMode=yes "$pi" \
    'printf "%s: %s, kernel %s, iptables: %s\n" "$(hostname)" "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(uname -r)" "$(sudo -n iptables --version 2>&1 | sed "s/^sudo: //")"'
done

step "what a Pi reaches before any plan: everything, the blocked host too"
ssh -F "$dir/ssh_config" -o BatchMode=yes pi-01 \
  'for h in dashboard.lab api.lab blocked.lab; do printf "%-14s %s\n" "$h" "$(timeout 3 bash -c "exec 3<>/dev/tcp/$h/443 && head -n1 <&3" 2>&1)"; done'

step "the plan for this fleet: $dir/site.hcl"
cat "$dir/site.hcl"

step "stop the lab"
