package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"
)

// Change is a run that changes a host's rulesets: an apply or a rollback.
// Its scripts carry out the protocol on the host; the runner uploads them
// with the rulesets, starts prepare over the first connection and confirm
// over a new one.
type Change struct {
	Run         string // the run's id: hex, unique
	NewV4       string // the rulesets to apply, canonical text
	NewV6       string
	RevertAfter time.Duration // the dead-man's delay
	Install     bool          // install iptables and netfilter-persistent first
	Operator    string        // user@machine, for the lock and the generation's metadata
	PlanDigest  string        // what the rulesets came from (plan digest, or "rollback to N")
	Kind        string        // "apply" or "rollback"
	// ExpectV4 and ExpectV6 are the digests of the live rulesets the change
	// was planned against: prepare refuses to go on if they changed since.
	// Empty skips the check.
	ExpectV4, ExpectV6 string
	LockTTL            time.Duration // how long the lock holds without a word from piwall
}

// RunDir is where a run keeps its files on the host.
func (c *Change) RunDir() string { return StateDir + "/runs/" + c.Run }

// UploadDir is where the runner uploads a run's files as the login user,
// before prepare moves them into RunDir as root.
func (c *Change) UploadDir() string { return "/tmp/piwall-" + c.Run }

// Exit statuses of prepare and confirm that the runner tells apart.
const (
	ExitLocked      = 3 // another run holds the lock
	ExitDrift       = 4 // the live rules changed since they were planned against
	ExitTestFailed  = 5 // iptables-restore --test refused the new rules
	ExitApplyFailed = 6 // the applier could not load the new rules
	ExitNotNew      = 7 // confirm ran over a connection older than the new rules
	ExitNotApplied  = 8 // the new rules are not (or no longer) live
)

// ApplyDelay is how long the applier waits, after prepare's command has
// ended, before it loads the new rules: time for prepare's answer to leave
// the host over the connection the rules may freeze.
const ApplyDelay = 100 * time.Millisecond

// Files are the run's files to upload: the rulesets, the scripts, and
// their checksums, which prepare verifies before using any of them.
func (c *Change) Files() map[string][]byte {
	files := map[string][]byte{
		"new.v4":     []byte(c.NewV4),
		"new.v6":     []byte(c.NewV6),
		"prepare.sh": []byte(c.script(prepareTmpl)),
		"apply.sh":   []byte(c.script(applyTmpl)),
		"confirm.sh": []byte(c.script(confirmTmpl)),
		"revert.sh":  []byte(c.script(revertTmpl)),
		"meta.json":  c.meta(),
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var sums strings.Builder
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	files["SHA256SUMS"] = []byte(sums.String())
	return files
}

// Generation is the metadata of one generation, kept on the host beside its
// rulesets as NNNN.json.
type Generation struct {
	Number   int       `json:"number"`
	Time     time.Time `json:"time"`
	Operator string    `json:"operator"`
	Kind     string    `json:"kind"`    // apply, rollback, or found (live rules saved before a change)
	Plan     string    `json:"plan"`    // the plan digest, or what was rolled back to
	Run      string    `json:"run"`     // the run that wrote it
	Outcome  string    `json:"outcome"` // applied, reverted, replaced
}

func (c *Change) meta() []byte {
	b, _ := json.Marshal(Generation{Operator: c.Operator, Kind: c.Kind, Plan: c.PlanDigest, Run: c.Run, Outcome: "applied"})
	return append(b, '\n')
}

// ParseGeneration reads a generation's metadata.
func ParseGeneration(data []byte) (Generation, error) {
	var g Generation
	if err := json.Unmarshal(data, &g); err != nil {
		return Generation{}, fmt.Errorf("generation metadata: %w", err)
	}
	if g.Number < 0 || g.Outcome == "" {
		return Generation{}, fmt.Errorf("generation metadata: number %d, outcome %q", g.Number, g.Outcome)
	}
	return g, nil
}

// PrepareCommand runs prepare as root. It is the only command of a run
// that the login user's shell sees: everything else is in the files.
func (c *Change) PrepareCommand(sudo bool) string {
	return privileged(sudo, "sh "+Quote(c.UploadDir()+"/prepare.sh"))
}

// ConfirmCommand runs confirm as root, over the new connection.
func (c *Change) ConfirmCommand(sudo bool) string {
	return privileged(sudo, "sh "+Quote(c.RunDir()+"/confirm.sh"))
}

// StatusCommand prints the run's status (reverted, applied, ...) and
// whether the live rules are the old ones again, after a revert.
func (c *Change) StatusCommand(sudo bool) string {
	return privileged(sudo, "sh "+Quote(c.RunDir()+"/confirm.sh")+" status")
}

// privileged runs a command as root: through sudo -n when the login user
// is not root, failing at once if sudo wants a password. The login shell
// reads its uid from /proc with builtins: on a busy Pi every process costs.
func privileged(sudo bool, cmd string) string {
	if !sudo {
		return cmd
	}
	return `uid=; while read -r k v _; do if [ "$k" = Uid: ]; then uid=$v; break; fi; done </proc/self/status; ` +
		`if [ "$uid" = 0 ]; then ` + cmd + `; else sudo -n ` + cmd + `; fi`
}

// FactsCommand runs the facts script, given on stdin, as root, with the
// login shell's view of the connection.
func FactsCommand(sudo bool) string {
	return privileged(sudo, `sh -s -- "$SSH_CONNECTION"`)
}

func (c *Change) script(t *template.Template) string {
	var b strings.Builder
	data := map[string]string{
		"Prelude":     shellPrelude,
		"Run":         Quote(c.Run),
		"RunDir":      Quote(c.RunDir()),
		"UploadDir":   Quote(c.UploadDir()),
		"StateDir":    Quote(StateDir),
		"RulesV4":     Quote(RulesV4),
		"RulesV6":     Quote(RulesV6),
		"Revert":      fmt.Sprint(int(c.RevertAfter.Seconds())),
		"LockTTL":     fmt.Sprint(int(c.LockTTL.Seconds())),
		"Operator":    Quote(c.Operator),
		"ExpectV4":    Quote(c.ExpectV4),
		"ExpectV6":    Quote(c.ExpectV6),
		"Install":     fmt.Sprint(c.Install),
		"ExitLocked":  fmt.Sprint(ExitLocked),
		"ExitDrift":   fmt.Sprint(ExitDrift),
		"ExitTest":    fmt.Sprint(ExitTestFailed),
		"ExitApply":   fmt.Sprint(ExitApplyFailed),
		"ExitNotNew":  fmt.Sprint(ExitNotNew),
		"ExitNotLive": fmt.Sprint(ExitNotApplied),
		"ApplyDelay":  fmt.Sprintf("%.2f", ApplyDelay.Seconds()),
	}
	if err := t.Execute(&b, data); err != nil {
		panic(err) // the templates and their data are fixed
	}
	return b.String()
}

// The scripts share these definitions.
const scriptCommon = `{{.Prelude}}
run={{.Run}} rundir={{.RunDir}} state={{.StateDir}}
# A dropped connection must not stop a script half-way.
trap '' HUP PIPE
save() { if [ "$1" = 4 ]; then iptables-save; else ip6tables-save; fi; }
restore() { if [ "$1" = 4 ]; then iptables-restore; else ip6tables-restore; fi; }
# live_is FAM FILE: the live rules of the family are FILE's, normalized.
live_is() { save "$1" 2>/dev/null | normalize | cmp -s - "$2"; }
# lock_is_ours: the lock names this run.
lock_is_ours() {
  [ -f "$state/lock" ] || return 1
  while IFS= read -r l; do [ "$l" = "run=$run" ] && return 0; done <"$state/lock"
  return 1
}
unlock() { if lock_is_ours; then rm -f "$state/lock"; fi; }
`

// prepareTmpl runs over the first connection: lock, check, install, save,
// test, arm the dead-man, start the applier. Each step comes before the
// next because the next relies on it: nothing is armed before the saved
// rules exist, nothing is applied before the dead-man is armed.
var prepareTmpl = template.Must(template.New("prepare").Parse(`set -eu
` + scriptCommon + `
mkdir -p "$state/generations" "$rundir"
chmod 700 "$state"
# Everything goes to a log, so that a connection that drops (piwall killed,
# the network gone) cannot stop this script half-way through a failed
# write; what piwall must read goes to fd 3, and on failure the log's tail
# to fd 4 (stderr).
exec 3>&1 4>&2 >>"$rundir/prepare.log" 2>&1
say() { echo "$*" >&3 2>/dev/null || true; }
finish() {
  st=$?
  if [ $st -ne 0 ]; then
    tail -n 20 "$rundir/prepare.log" >&4 2>/dev/null || true
    unlock
  fi
  exit $st
}
trap finish EXIT
fail() { echo "piwall: $*"; exit 1; }

# 1. The lock: one change at a time. A lock past its expiry is stale (its
# run was killed and nothing released it) and is taken over.
now=$(date +%s)
lockfile="$state/lock"
take_lock() { ( set -C; printf 'run=%s\noperator=%s\nsince=%s\nexpires=%s\n' "$run" {{.Operator}} "$now" "$((now + {{.LockTTL}}))" >"$lockfile" ) 2>/dev/null; }
if ! take_lock; then
  expires=$(sed -n 's/^expires=//p' "$lockfile" 2>/dev/null || true)
  if [ -n "$expires" ] && [ "$expires" -lt "$now" ]; then
    say "stale-lock $(tr '\n' ' ' <"$lockfile")"
    rm -f "$lockfile"
    take_lock || { cat "$lockfile"; exit {{.ExitLocked}}; }
  else
    echo "locked by: $(tr '\n' ' ' <"$lockfile")"
    exit {{.ExitLocked}}
  fi
fi

# 2. The run's files, as uploaded, checked.
cp {{.UploadDir}}/* "$rundir/"
rm -rf {{.UploadDir}}
cd "$rundir"
sha256sum --quiet -c SHA256SUMS || fail "the uploaded files do not match their checksums"

# 3. iptables and netfilter-persistent, from apt, without questions.
if {{.Install}} || ! command -v iptables-restore >/dev/null 2>&1 || ! command -v netfilter-persistent >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' 'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq iptables netfilter-persistent iptables-persistent </dev/null || fail "installing iptables failed"
  say installed
fi

# 4. The live rules, saved for the dead-man. A host whose tables were never
# loaded prints nothing; restoring nothing would leave the new rules in
# place, so the saved state is then an explicit all-ACCEPT ruleset.
for fam in 4 6; do
  out=$(save $fam)
  printf '%s\n' "$out" | normalize >saved.v$fam
done
# The rules must still be those the change was planned against: digests
# of the normalized text, as the facts took them.
if [ -n {{.ExpectV4}}{{.ExpectV6}} ]; then
  set -- $(sha256sum saved.v4 saved.v6)
  if [ -n {{.ExpectV4}} ] && [ "$1" != {{.ExpectV4}} ]; then echo "the IPv4 rules changed since the plan"; exit {{.ExitDrift}}; fi
  if [ -n {{.ExpectV6}} ] && [ "$3" != {{.ExpectV6}} ]; then echo "the IPv6 rules changed since the plan"; exit {{.ExitDrift}}; fi
fi
for fam in 4 6; do
  first=
  read -r first <saved.v$fam || true
  if [ -z "$first" ]; then
    printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' >saved.v$fam
  fi
  if [ -f /etc/iptables/rules.v$fam ]; then cp /etc/iptables/rules.v$fam persisted.v$fam; fi
done

# 5. The new rules, tested by the kernel without loading them.
iptables-restore --test <new.v4 || { echo "iptables-restore --test refused the IPv4 rules"; exit {{.ExitTest}}; }
ip6tables-restore --test <new.v6 || { echo "ip6tables-restore --test refused the IPv6 rules"; exit {{.ExitTest}}; }

# 6. The dead-man, armed before anything changes: it restores the saved
# rules after the delay unless confirm disarms it. A systemd timer survives
# anything that happens to this connection and to piwall; without systemd,
# a process in a session of its own does.
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  systemd-run --quiet --unit="piwall-revert-$run" --on-active={{.Revert}}s --timer-property=AccuracySec=1s /bin/sh "$rundir/revert.sh" 3>&- 4>&-
  echo "deadman=systemd" >deadman
else
  setsid sh -c "sleep {{.Revert}}; exec sh '$rundir/revert.sh'" </dev/null >/dev/null 2>&1 3>&- 4>&- &
  echo "deadman=process $!" >deadman
fi
read -r armed <deadman
say "armed $armed"

# 7. The applier, detached: it waits for this script to end, so that its
# result reaches piwall before the new rules can freeze this connection.
# Its descriptors are closed: sshd ends the session only when every
# holder of its output is gone.
setsid sh "$rundir/apply.sh" $$ </dev/null >"$rundir/apply.log" 2>&1 3>&- 4>&- &
say started
`))

// applyTmpl loads the new rules, each family atomically.
var applyTmpl = template.Must(template.New("apply").Parse(scriptCommon + `
cd "$rundir"
while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
sleep {{.ApplyDelay}}
echo applying >status
if ! iptables-restore <new.v4; then
  echo "failed iptables-restore" >status
  exit 1
fi
if ! ip6tables-restore <new.v6; then
  iptables-restore <saved.v4
  echo "failed ip6tables-restore" >status
  exit 1
fi
read -r up _ </proc/uptime
echo "$up" >applied_at
echo applied >status
`))

// confirmTmpl runs over the new connection. It proves that connection was
// opened after the new rules went live and that they are the ones live,
// then persists them, records the generation, disarms the dead-man and
// releases the lock, in that order: were it stopped half-way, the dead-man
// undoes all of it, so the host ends with the old rules live and persisted,
// or the new rules live and persisted.
var confirmTmpl = template.Must(template.New("confirm").Parse(scriptCommon + `
cd "$rundir"
mode=${1:-}
# The applier may still be at work when this connection arrives. Builtins
# (read, case, $((...))) where they do: on a busy Pi every process costs.
i=0
while :; do
  st=pending
  if [ -f status ]; then read -r st <status; fi
  case "$st" in applying|pending) ;; *) break ;; esac
  i=$((i + 1)); [ $i -gt 100 ] && break
  sleep 0.1
done
if [ "$mode" = status ]; then
  echo "status=$st"
  echo "live-is-saved=$(live_is 4 saved.v4 && live_is 6 saved.v6 && echo yes || echo no)"
  exit 0
fi
case "$st" in
  applied) ;;
  failed*) echo "$st: $(tail -n 3 apply.log | tr '\n' ' ')" >&2; touch disarmed; sh "$rundir/revert.sh" now >/dev/null 2>&1; exit {{.ExitApply}} ;;
  *) echo "status $st" >&2; exit {{.ExitNotLive}} ;;
esac

# This connection must be newer than the rules: the sshd process that
# accepted it (the highest "sshd: " ancestor that is not the listener)
# started after applied_at. Start times are clock ticks since boot, the
# 20th field of /proc/PID/stat after the command name.
pid=$$ conn= started=
while [ "$pid" -gt 1 ]; do
  cmd=
  IFS= read -r cmd </proc/$pid/cmdline 2>/dev/null || true
  read -r stat </proc/$pid/stat 2>/dev/null || break
  set -- ${stat##*) }
  case "$cmd" in
    *"[listener]"*) ;;
    "sshd: "*|"sshd-session: "*) conn=$pid started=${20} ;;
  esac
  pid=$2
done
if [ -z "$conn" ]; then echo "no sshd process above this command" >&2; exit {{.ExitNotNew}}; fi
# applied_at is /proc/uptime's seconds with two decimals.
read -r at <applied_at
hz=$(getconf CLK_TCK)
if [ $((started * 100)) -lt $(((${at%.*} * 100 + 1${at#*.} - 100) * hz)) ]; then
  echo "this connection was opened before the new rules went live" >&2
  exit {{.ExitNotNew}}
fi
for fam in 4 6; do
  if ! live_is $fam new.v$fam; then
    echo "the live IPv$fam rules are not the new ones" >&2
    exit {{.ExitNotLive}}
  fi
done

# Persist: written aside and flushed, renamed over, the directory flushed.
[ -d /etc/iptables ] || mkdir -p /etc/iptables
cp new.v4 /etc/iptables/.rules.v4.piwall
cp new.v6 /etc/iptables/.rules.v6.piwall
sync /etc/iptables/.rules.v4.piwall /etc/iptables/.rules.v6.piwall
mv -f /etc/iptables/.rules.v4.piwall /etc/iptables/rules.v4
mv -f /etc/iptables/.rules.v6.piwall /etc/iptables/rules.v6
sync /etc/iptables
# Record the generation.
gens="$state/generations"
cur=0
if [ -f "$state/current" ]; then read -r cur <"$state/current"; fi
next=$((cur + 1))
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The rules replaced are a generation of their own unless they are the
# current one already.
c=$(printf %04d "$cur")
if [ "$cur" -eq 0 ] || ! cmp -s saved.v4 "$gens/$c.v4" || ! cmp -s saved.v6 "$gens/$c.v6"; then
  n=$(printf %04d "$next")
  cp saved.v4 "$gens/$n.v4"; cp saved.v6 "$gens/$n.v6"
  printf '{"number":%d,"time":"%s","operator":"","kind":"found","plan":"","run":"%s","outcome":"replaced"}\n' "$next" "$now" "$run" >"$gens/$n.json"
  next=$((next + 1))
fi
n=$(printf %04d "$next")
cp new.v4 "$gens/$n.v4"; cp new.v6 "$gens/$n.v6"
sed -e "s/\"number\":0/\"number\":$next/" -e "s/\"time\":\"[^\"]*\"/\"time\":\"$now\"/" meta.json >"$gens/$n.json"
echo "$cur" >previous_current
echo "$next" >generation
echo "$next" >"$state/current.tmp" && mv -f "$state/current.tmp" "$state/current"
# Disarm and unlock.
touch disarmed
read -r deadman <deadman
case "$deadman" in
  deadman=systemd) systemctl stop "piwall-revert-$run.timer" >/dev/null 2>&1 || true ;;
  "deadman=process "*)
    pkill -P "${deadman#deadman=process }" sleep 2>/dev/null || true
    kill "${deadman#deadman=process }" 2>/dev/null || true ;;
esac
echo confirmed >status
unlock
echo "confirmed generation=$next"
`))

// revertTmpl is the dead-man: it puts back the saved rules, the persisted
// files as they were, and the current generation, unless disarmed.
var revertTmpl = template.Must(template.New("revert").Parse(scriptCommon + `
cd "$rundir"
[ -e disarmed ] && [ "${1:-}" != now ] && exit 0
iptables-restore <saved.v4
ip6tables-restore <saved.v6
for fam in 4 6; do
  if [ -f persisted.v$fam ]; then
    cp persisted.v$fam "/etc/iptables/.rules.v$fam.piwall" && mv -f "/etc/iptables/.rules.v$fam.piwall" "/etc/iptables/rules.v$fam"
  elif [ -f "/etc/iptables/rules.v$fam" ] && cmp -s new.v$fam "/etc/iptables/rules.v$fam"; then
    rm -f "/etc/iptables/rules.v$fam"
  fi
done
if [ -f generation ]; then
  n=$(printf %04d "$(cat generation)")
  sed -i 's/"outcome":"applied"/"outcome":"reverted"/' "$state/generations/$n.json"
  cat previous_current >"$state/current"
fi
echo reverted >status
unlock
`))
