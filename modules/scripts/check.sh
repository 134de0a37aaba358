# check.sh probes, from the host, what its rules must let through and what
# they must stop, and changes nothing. It runs under bash, as root: it
# needs bash's /dev/tcp and /dev/udp and $EPOCHREALTIME, timeout, dd and od
# (coreutils), and ping for the ping probes (a host without it says so).
# The header above it assigns the time limit of one probe; the lines after
# it start one probe each, in the background, and `finish` waits for them
# all and prints one line per probe, which ParseProbes reads:
#
#   probe ID RESULT MILLISECONDS DETAIL
#
# RESULT is open (a TCP connection was made), answer (DETAIL: the reply in
# hex), reply (ping), refused, denied (this host's own rules: EPERM),
# unreachable, timeout, missing (DETAIL: the tool) or error (DETAIL: what
# the tool said). The last line is "end": an output without it was cut.
export LC_ALL=C PATH
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

# now_us: microseconds since the epoch, from a builtin variable: a probe's
# time is not a process's start-up.
now_us() { us=${EPOCHREALTIME/./}; }

# p_tcp ADDR PORT: a TCP connection, made and closed.
p_tcp() { timeout "$limit" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>&1; }

# p_udp ADDR PORT PAYLOAD FILE: one datagram (PAYLOAD, printf's \xHH
# escapes, written in one write) and one reply, read by a single read
# into FILE. A connected UDP socket reports an ICMP port unreachable as
# "Connection refused".
p_udp() {
  timeout "$limit" bash -c 'exec 3<>"/dev/udp/$1/$2" && printf "$3" >&3 && dd bs=4096 count=1 status=none <&3 >"$4"' _ "$1" "$2" "$3" "$4" 2>&1
}

# p_ping ADDR: one ICMP echo.
p_ping() {
  command -v ping >/dev/null 2>&1 || { echo "ping"; return 127; }
  ping -n -c 1 -W "$limit" "$1" 2>&1
}

# probe ID TRIES KIND ADDR PORT [PAYLOAD]: starts one probe in the
# background. A probe that times out is sent again, up to TRIES times in
# all: on a busy host, starting the tools can eat into the limit. Its time
# is that of every try.
probe() {
  id=$1 tries=$2
  shift 2
  (
    now_us; start=$us
    while :; do
      rm -f "$work/$id.bin"
      case $1 in
        tcp) msg=$(p_tcp "$2" "$3"); st=$? ;;
        udp) msg=$(p_udp "$2" "$3" "$4" "$work/$id.bin"); st=$? ;;
        ping) msg=$(p_ping "$2"); st=$? ;;
        *) msg="unknown probe $1"; st=1 ;;
      esac
      tries=$((tries - 1))
      [ "$tries" -gt 0 ] || break
      case $1/$st in
        */124 | ping/1) ;;
        udp/0) [ -s "$work/$id.bin" ] && break ;;
        *) break ;;
      esac
    done
    now_us; ms=$(((us - start) / 1000))
    detail=
    case $msg in
      *"Operation not permitted"*) result=denied ;;
      *"Connection refused"*) result=refused ;;
      *"unreachable"* | *"No route to host"*) result=unreachable ;;
      *)
        case $1/$st in
          */124 | ping/1) result=timeout ;;
          */127) result=missing detail=$msg ;;
          tcp/0) result=open ;;
          ping/0) result=reply ;;
          udp/0)
            if [ -s "$work/$id.bin" ]; then
              result=answer detail=$(od -An -v -tx1 "$work/$id.bin" | tr -d ' \n')
            else
              result=timeout
            fi
            ;;
          *) result=error ;;
        esac
        ;;
    esac
    if [ "$result" = error ]; then
      detail=$(printf '%s' "$msg" | tr -s ' \n\t\r' '    ' | cut -c1-300)
    fi
    printf 'probe %s %s %s %s\n' "$id" "$result" "$ms" "$detail" >"$work/$id.out"
  ) &
}

# finish: waits for every probe and prints their lines, then "end".
finish() {
  wait
  for f in "$work"/*.out; do
    [ -f "$f" ] && cat "$f"
  done
  echo end
}
