#!/usr/bin/env bash
# piwall's main job, end to end, against the lab on this machine: start three
# lab Pis (fresh: no iptables), plan, apply, show what a Pi can and cannot
# reach and that the intruder's SSH is refused, roll one Pi back, stop the
# lab. Run it as root, or as a user who may sudo: bash examples/lab/demo.sh
set -euo pipefail
# The lab needs root. From a user's shell, the script runs itself again
# through sudo; a root shell (a fresh Debian has no sudo) runs it as it is.
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "demo.sh: the lab needs root: run it in a root shell (sudo is not installed)" >&2
    exit 1
  fi
  exec sudo bash "$0" "$@"
fi
cd "$(dirname "$0")/../.."
. .ci/setup

bin=$(mktemp -d)
go build -o "$bin/piwall" ./cmd/piwall
go build -o "$bin/piwall-lab" ./cmd/piwall-lab
export PATH="$bin:$PATH"
dir=/var/lib/piwall-lab
ssh_pi() { ssh -F "$dir/ssh_config" -o BatchMode=yes "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "start the lab: three fresh Pis"
trap 'piwall-lab down; rm -rf "$bin"' EXIT
piwall-lab up --pis 3 --dir "$dir"

step "the plan: $dir/site.hcl"
piwall validate "$dir/site.hcl"
piwall plan "$dir/site.hcl" --limit pi-01 2>/dev/null
set +e
piwall plan "$dir/site.hcl" --detailed-exitcode >/dev/null 2>&1
echo "piwall plan --detailed-exitcode: exit $? (2: changes to make)"
set -e

step "apply: install iptables, apply under a dead-man, confirm over a new connection, persist"
time piwall apply "$dir/site.hcl" --yes 2>/dev/null | grep -v '^    [+~]'

step "a second plan: nothing to do"
piwall plan "$dir/site.hcl" --detailed-exitcode 2>/dev/null | tail -n 1

step "from pi-01: the dashboard and the API answer, blocked.lab does not"
ssh_pi pi-01 'for h in dashboard.lab api.lab blocked.lab; do
  printf "%-14s " "$h"; timeout 3 bash -c "exec 3<>/dev/tcp/$h/443 && head -n1 <&3" 2>/dev/null || echo "(no answer: dropped)"
done'

step "SSH to pi-01 from the intruder's address (198.18.0.66): refused"
if ip netns exec pwl-intruder ssh -F "$dir/ssh_config" -o BatchMode=yes -o ConnectTimeout=3 pi-01 true 2>&1; then
  echo "the intruder got in" >&2; exit 1
fi

step "history and rollback of pi-03"
piwall history pi-03 --plan "$dir/site.hcl"
piwall rollback pi-03 --plan "$dir/site.hcl" --yes 2>/dev/null | grep -v "^    [+~-]"
ssh_pi pi-03 'sudo -n iptables -S | head -n 3'

step "stop the lab"
