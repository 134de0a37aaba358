# facts.sh gathers a host's facts in one round trip, run as root with the
# login shell's $SSH_CONNECTION as its first argument. The header above it
# assigns the marker and the paths; the lines after it call the functions
# below, the request's values quoted. Its output is sections, each headed
# by a line "$marker NAME", which ParseFacts reads.
export LC_ALL=C PATH
ssh_connection=${1:-}
sec() { printf '%s %s\n' "$marker" "$1"; }
# show FILE: print FILE, if there is one, with builtins only: on a busy Pi
# every process costs.
show() { [ -f "$1" ] || return 0; while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done <"$1"; }

# facts: what every run reads.
facts() {
  sec ssh; printf '%s\n' "$ssh_connection"
  # The interface the operator's packets arrive on, for the lockout check.
  sec route
  set -- $ssh_connection
  if [ -n "${1:-}" ]; then ip -o route get "$1" 2>/dev/null || true; fi
  sec tools
  for t in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore netfilter-persistent systemd-run apt-get getent ipset; do
    command -v "$t" >/dev/null 2>&1 && echo "$t"
  done
  # The live rules as iptables-save prints them: piwall normalizes and
  # digests them (NormalizeSave) as prepare does the file it saves. stderr
  # apart: a warning must not become part of the rules.
  for fam in 4 6; do
    save=iptables-save; [ $fam = 6 ] && save=ip6tables-save
    sec "v$fam"
    if command -v $save >/dev/null 2>&1; then
      $save 2>/dev/null || { sec "v$fam-error"; $save 2>&1 >/dev/null; }
    fi
  done
  # The backend iptables uses, and the other backend's filter table: a
  # host with rules in both filters packets with both.
  sec backend
  v=$(iptables --version 2>/dev/null) || v=
  printf '%s\n' "$v"
  for fam in 4 6; do
    case "$v" in
      *nf_tables*)
        o=iptables-legacy-save names=/proc/net/ip_tables_names
        [ $fam = 4 ] || o=ip6tables-legacy-save names=/proc/net/ip6_tables_names
        # Only where legacy tables are loaded: saving one would load it,
        # and iptables would warn of it ever after.
        t=
        [ -r $names ] && read -r t <$names
        [ -n "$t" ] || continue ;;
      *legacy*) o=iptables-nft-save; [ $fam = 4 ] || o=ip6tables-nft-save ;;
      *) continue ;;
    esac
    command -v "$o" >/dev/null 2>&1 || continue
    sec other; echo "$o"; "$o" -t filter 2>/dev/null || true
  done
  sec resolv; show "$resolv_conf"
  sec generation; show "$current"
  sec lock; show "$lockfile"
  sec boot; show "$boot_id"
  sec foreign; show "$foreign_state"
  # The names' refresher: each name it refreshes, the addresses its sets
  # keep with when each was last seen, and its last refresh.
  sec refresher
  if [ -f "$names_dir/conf" ]; then
    while read -r kind a b name; do
      [ "$kind" = name ] || continue
      echo "name $a $name"
      if [ -f "$names_dir/state/$a" ]; then
        while read -r l; do echo "addr $l"; done <"$names_dir/state/$a"
      fi
      show "$names_dir/state/$a.status"
    done <"$names_dir/conf"
  fi
  # Whether the boot loads the persisted files: the packages' state in
  # dpkg ("ii" when installed and configured), netfilter-persistent's
  # plugins, and whether its service and those that load another
  # firewall at boot (or flush this one) are enabled.
  sec restore
  dpkg-query -W -f='package ${Package} ${db:Status-Abbrev}\n' iptables netfilter-persistent iptables-persistent ipset ipset-persistent 2>/dev/null || true
  for p in 10-ipset 15-ip4tables 25-ip6tables; do
    [ -x "$plugins_dir/$p" ] && echo "plugin $p"
  done
  if [ -d "$systemd_dir" ]; then
    for u in netfilter-persistent nftables ufw firewalld; do
      echo "unit $u $(systemctl is-enabled "$u.service" 2>/dev/null || true)"
    done
  fi
  if [ -f "$ufw_conf" ] && grep -q '^ENABLED=yes' "$ufw_conf"; then echo "ufw-enabled"; fi
  # The host's own network: its addresses (one a DHCP server leased is
  # "dynamic"), and the daemons that keep them and its .local name.
  sec addrs; ip -o addr show 2>/dev/null || true
  sec daemons
  for c in "$proc"/[0-9]*/comm; do
    n=
    read -r n <"$c" 2>/dev/null || continue
    case "$n" in dhclient | dhcpcd | NetworkManager | systemd-network | avahi-daemon) echo "$n" ;; esac
  done
  # Where the rules are persisted: the directory (or the nearest that
  # exists), the mounts, and the kernel's command line (raspi-config's
  # overlay root is boot=overlay there).
  sec rules-dir
  d=$rules_dir
  while [ ! -d "$d" ]; do d=${d%/*}; [ -n "$d" ] || d=/; done
  printf '%s\n' "$d"
  sec mounts; show "$mountinfo"
  sec cmdline; show "$cmdline"
  # Both persisted files' digests from one sha256sum, "none" for a missing one.
  sec persisted
  p4=none p6=none
  set -- $(sha256sum "$rules_v4" "$rules_v6" 2>/dev/null)
  while [ $# -ge 2 ]; do case "$2" in "$rules_v4") p4=$1 ;; "$rules_v6") p6=$1 ;; esac; shift 2; done
  printf '%s\n%s\n' "$p4" "$p6"
}

# name NAME: NAME as the host resolves it.
name() { sec name; printf '%s\n' "$1"; getent ahosts "$1" || echo "error $?"; }

# rollback_to N|previous: the rules of generation N, or of the one before
# the current: where a plain rollback goes. The host computes it, so that
# "previous" means the same whoever asks.
rollback_to() {
  g=$1
  if [ "$g" = previous ]; then
    cur=1
    if [ -f "$current" ]; then read -r cur <"$current"; fi
    g=$((cur - 1))
  fi
  for fam in v4 v6 sets names; do
    sec "generation-$fam"; echo "$g"; cat "$gens/$(printf %04d "$g").$fam" 2>/dev/null || echo error
  done
}

# persisted_rules: the persisted rules files as they are, for comparing
# them with the live rules; a missing one is said so.
persisted_rules() {
  for fam in 4 6; do
    f=$rules_v4; [ $fam = 6 ] && f=$rules_v6
    if [ -f "$f" ]; then sec "persisted-v$fam"; show "$f"; else sec "persisted-v$fam-missing"; fi
  done
}

# status_facts: what status shows beyond the facts: each run's status and
# dead-man, and whether that dead-man still waits (its timer active, its
# process alive); the filter tables with their counters.
status_facts() {
  sec runs
  for d in "$runs_dir"/*/; do
    [ -f "${d}deadman" ] || continue
    r=${d%/}; r=${r##*/}
    st=unknown; [ -f "${d}status" ] && read -r st _ <"${d}status"
    read -r dm <"${d}deadman"
    alive=no
    case "$dm" in
      deadman=systemd) systemctl is-active --quiet "piwall-revert-$r.timer" 2>/dev/null && alive=yes ;;
      "deadman=process "*) kill -0 "${dm#deadman=process }" 2>/dev/null && alive=yes ;;
    esac
    printf 'run %s %s %s %s\n' "$r" "$st" "$alive" "$dm"
  done
  for fam in 4 6; do
    save=iptables-save; [ $fam = 6 ] && save=ip6tables-save
    sec "counters-v$fam"
    if command -v $save >/dev/null 2>&1; then $save -c -t filter 2>/dev/null || true; fi
  done
}

# history: the metadata of every generation, oldest first.
history() { sec history; for f in "$gens"/*.json; do [ -f "$f" ] && cat "$f"; done; }
