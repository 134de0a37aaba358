package modules

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// Change is a run that changes a host's rulesets: an apply or a rollback.
// Its scripts carry out the protocol on the host; the runner streams them
// with the rulesets (Archive) into prepare's command over the first
// connection, and starts confirm over a new one.
type Change struct {
	Run   string // the run's id: hex, unique
	NewV4 string // piwall's part of the rulesets to apply, canonical text
	NewV6 string
	// Foreign declares the rules of others that the change leaves as they
	// are (firewall.Foreign.Text): foreign.re on the host.
	Foreign     string
	RevertAfter time.Duration // the dead-man's delay
	Install     bool          // install iptables and netfilter-persistent first
	// EnableRestore: confirm enables netfilter-persistent once the rules
	// are persisted, so that the boot loads them.
	EnableRestore bool
	// RulesInert: nothing loads the rules files at boot today; prepare
	// sets any it finds aside before installing or enabling anything.
	RulesInert bool
	Operator   string // user@machine, for the lock and the generation's metadata
	Source     string // what the rulesets came from (plan digest, or "rollback to N")
	Kind       string // "apply" or "rollback"
	// ExpectV4 and ExpectV6 are the digests of the live rulesets the change
	// was planned against: prepare refuses to go on if they changed since.
	// Empty skips the check.
	ExpectV4, ExpectV6 string
	// Sets is the `ipset restore` document of the address sets the new
	// rules match, holding the addresses the plan saw; Names the names'
	// refresher's configuration (NamesConf). Both empty when the rules
	// match no name's set: confirm then stops the refresher.
	Sets, Names string
	// Paths are where the scripts keep their state: the zero value for a
	// host, a temporary directory in tests.
	Paths Paths
}

// NamesConf is the configuration of a host's names' refresher: how often
// it runs and how long an address stays after its name last answered
// with it (whole seconds), then each name with its two sets. Empty when d
// matches no name's set.
func NamesConf(d *firewall.Desired) string {
	if len(d.Sets) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "refresh %d\ngrace %d\n", int(d.Refresh/time.Second), int(d.Grace()/time.Second))
	for _, s := range d.Sets {
		fmt.Fprintf(&b, "name %s %s %s\n", s.V4, s.V6, s.Name)
	}
	return b.String()
}

// RunDir is where a run keeps its files on the host.
func (c *Change) RunDir() string { return c.Paths.runDir(c.Run) }

// UploadDir is where prepare's command unpacks a run's files as the login
// user, before prepare moves them into RunDir as root.
func (c *Change) UploadDir() string { return c.Paths.uploadDir(c.Run) }

// Exit statuses of prepare and confirm that the runner tells apart.
const (
	ExitLocked        = 3  // another run holds the lock
	ExitDrift         = 4  // the live rules changed since they were planned against
	ExitTestFailed    = 5  // iptables-restore --test refused the new rules
	ExitApplyFailed   = 6  // the applier could not load the new rules
	ExitNotNew        = 7  // confirm ran over a connection older than the new rules
	ExitNotApplied    = 8  // the new rules are not (or no longer) live
	ExitPersistFailed = 9  // confirm could not write the rules files as applied
	ExitUnpack        = 10 // prepare's command could not unpack the run's files
)

// PrepareLimit bounds prepare on the host: each apt-get has AptLimit (two
// of them: update and install), the rest takes seconds. The runner waits
// for prepare as long, and the lock outlives it.
const (
	PrepareLimit = 15 * time.Minute
	AptLimit     = 6 * time.Minute
)

// lockTTL is how long a run's lock holds, on the host's boot clock: past
// the longest prepare and the dead-man's delay, with room to spare. A lock
// of an earlier boot is stale at once: its run died with the boot.
func (c *Change) lockTTL() time.Duration { return PrepareLimit + c.RevertAfter + 10*time.Minute }

// ApplyDelay is how long the applier waits, after prepare's command has
// ended, before it loads the new rules: time for prepare's answer to leave
// the host over the connection the rules may freeze.
const ApplyDelay = 100 * time.Millisecond

// Files are the run's files: the rulesets, the scripts, and their
// checksums, which prepare verifies before using any of them.
func (c *Change) Files() map[string][]byte {
	files := map[string][]byte{
		"new.v4":     []byte(c.NewV4),
		"new.v6":     []byte(c.NewV6),
		"prepare.sh": []byte(c.script("prepare.sh")),
		"apply.sh":   []byte(c.script("apply.sh")),
		"confirm.sh": []byte(c.script("confirm.sh")),
		"revert.sh":  []byte(c.script("revert.sh")),
		"meta.json":  c.meta(),
		"foreign.re": []byte(c.Foreign),
		"sets":       []byte(c.Sets),
		"names":      []byte(c.Names),
		"refresh.sh": []byte(c.refresher()),
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
	Source   string    `json:"plan"`    // the plan digest, or what was rolled back to
	Run      string    `json:"run"`     // the run that wrote it
	Outcome  string    `json:"outcome"` // applied, reverted, replaced
}

func (c *Change) meta() []byte {
	b, _ := json.Marshal(Generation{Operator: c.Operator, Kind: c.Kind, Source: c.Source, Run: c.Run, Outcome: "applied"})
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

// Archive is the run's files as a tar archive, prepare's command's stdin:
// the upload rides on the command, costing no round trip of its own.
func (c *Change) Archive() []byte { return archive(c.Files()) }

// archive packs files (name → content) into a tar archive, in name order,
// each readable by its owner alone.
func archive(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		// Writes to a bytes.Buffer do not fail.
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(files[n])), Format: tar.FormatUSTAR})
		tw.Write(files[n])
	}
	tw.Close()
	return buf.Bytes()
}

// PrepareCommand unpacks the run's files (Archive, on its stdin) into
// UploadDir as the login user, readable by it alone, then runs prepare as
// root. It is the only command of a run that the login user's shell sees:
// everything else is in the files.
func (c *Change) PrepareCommand(sudo bool) string {
	up := Quote(c.UploadDir())
	return fmt.Sprintf("umask 077; mkdir %s && tar -xf - -C %s || exit %d; ", up, up, ExitUnpack) +
		privileged(sudo, "sh "+Quote(c.UploadDir()+"/prepare.sh"))
}

// ConfirmCommand runs confirm as root, over the new connection, whose
// round-trip time rtt was measured (0: unknown): confirm then takes the
// connection for newer than the rules only if its sshd started a round
// trip after them, so that its first packet, too, met the new rules.
func (c *Change) ConfirmCommand(sudo bool, rtt time.Duration) string {
	cs := (rtt + 10*time.Millisecond - 1) / (10 * time.Millisecond)
	return privileged(sudo, "sh "+Quote(c.RunDir()+"/confirm.sh")+fmt.Sprintf(" rtt=%d", cs))
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
