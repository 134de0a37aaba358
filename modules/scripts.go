package modules

import (
	"embed"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/piwall/piwall/modules/firewall"
)

// The scripts that run on a host are files of their own under scripts/:
// common.sh, shared by the four of a run (prepare, apply, confirm,
// revert), and facts.sh. Each script piwall sends is a header, common.sh
// (for a run's) and its body. The header is generated from one struct,
// runHeader or factsHeader: only assignments, every value through Quote.
// So every path, exit status and delay the scripts use is named once,
// here, and the scripts name none of their own.
//
//go:embed scripts/*.sh
var scriptFiles embed.FS

func scriptFile(name string) string {
	b, err := scriptFiles.ReadFile("scripts/" + name)
	if err != nil {
		panic(err) // embedded: a missing file is a build mistake
	}
	return string(b)
}

// Paths are where the scripts find and keep things on a host. An empty
// field means the place every host has: /var/lib/piwall, /etc/iptables,
// /tmp, Debian's PATH with /usr/sbin, /run/systemd/system and
// /etc/resolv.conf. Only tests set them, to point the scripts into a
// temporary directory.
type Paths struct {
	StateDir   string // piwall's own state: generations, lock, runs
	RulesDir   string // the persisted rules, rules.v4 and rules.v6, that netfilter-persistent restores at boot
	UploadRoot string // where the login user uploads a run's files
	PATH       string // the scripts' PATH: Debian's, with /usr/sbin, which a user's PATH lacks
	SystemdDir string // there when systemd is PID 1: the dead-man is then a systemd timer
	ResolvConf string // the host's resolvers
	BootID     string // the kernel's id of this boot
	Uptime     string // seconds since boot: the clock no NTP step moves
	PolicyRCD  string // Debian's policy-rc.d: whether a package's scripts may start services
	PluginsDir string // netfilter-persistent's plugins, which load the rules files at boot
	UFWConf    string // ufw's switch (ENABLED=yes)
	Mountinfo  string // the mounts, for the file system the rules are kept on
	Cmdline    string // the kernel's command line
	Proc       string // the processes, for the daemons that run
	UnitDir    string // where the names' refresher's systemd units go
}

// defaultPaths are the places on a host.
var defaultPaths = Paths{
	StateDir:   "/var/lib/piwall",
	RulesDir:   "/etc/iptables",
	UploadRoot: "/tmp",
	PATH:       "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	SystemdDir: "/run/systemd/system",
	ResolvConf: "/etc/resolv.conf",
	BootID:     "/proc/sys/kernel/random/boot_id",
	Uptime:     "/proc/uptime",
	PolicyRCD:  "/usr/sbin/policy-rc.d",
	PluginsDir: "/usr/share/netfilter-persistent/plugins.d",
	UFWConf:    "/etc/ufw/ufw.conf",
	Mountinfo:  "/proc/self/mountinfo",
	Cmdline:    "/proc/cmdline",
	Proc:       "/proc",
	UnitDir:    "/etc/systemd/system",
}

// resolved returns p with each empty field set to its default.
func (p Paths) resolved() Paths {
	pv, dv := reflect.ValueOf(&p).Elem(), reflect.ValueOf(defaultPaths)
	for i := range pv.NumField() {
		if pv.Field(i).String() == "" {
			pv.Field(i).Set(dv.Field(i))
		}
	}
	return p
}

// The files under StateDir and RulesDir, named here only.
func (p Paths) lockFile() string       { return p.resolved().StateDir + "/lock" }
func (p Paths) currentFile() string    { return p.resolved().StateDir + "/current" }
func (p Paths) generationsDir() string { return p.resolved().StateDir + "/generations" }

// foreignFile is the declaration of others' rules the current generation
// was applied with.
func (p Paths) foreignFile() string { return p.resolved().StateDir + "/foreign.re" }
func (p Paths) runDir(run string) string {
	return p.resolved().StateDir + "/runs/" + run
}
func (p Paths) uploadDir(run string) string { return p.resolved().UploadRoot + "/piwall-" + run }

// namesDir is where the names' refresher, its configuration and each
// name's state live.
func (p Paths) namesDir() string { return p.resolved().StateDir + "/names" }

// setsFile is the persisted address sets, which ipset-persistent loads at
// boot before the rules.
func (p Paths) setsFile() string { return p.resolved().RulesDir + "/ipsets" }

// rules is the persisted rules file of a family: "v4" or "v6".
func (p Paths) rules(fam string) string { return p.resolved().RulesDir + "/rules." + fam }

// rulesNew is where a run's confirm writes a family's rules before
// renaming them over rules(fam): in the same directory, so that the rename
// is atomic, and named after the run, so that no other run uses it.
func (p Paths) rulesNew(fam, run string) string {
	return p.resolved().RulesDir + "/.rules." + fam + ".piwall-" + run
}

// runHeader is what the scripts of a run know of it. Each field is one
// assignment, to the variable its sh tag names.
type runHeader struct {
	PATH        string `sh:"PATH"`
	Run         string `sh:"run"`
	State       string `sh:"state"`
	RunDir      string `sh:"rundir"`
	Upload      string `sh:"upload"`
	Gens        string `sh:"gens"`
	Current     string `sh:"current"`
	Lock        string `sh:"lockfile"`
	Foreign     string `sh:"foreign_state"`
	RulesDir    string `sh:"rules_dir"`
	RulesV4     string `sh:"rules_v4"`
	RulesV6     string `sh:"rules_v6"`
	RulesV4New  string `sh:"rules_v4_new"`
	RulesV6New  string `sh:"rules_v6_new"`
	SystemdDir  string `sh:"systemd_dir"`
	BootID      string `sh:"boot_id"`
	Uptime      string `sh:"uptime"`
	PolicyRCD   string `sh:"policy_rc_d"`
	NamesDir    string `sh:"names_dir"`
	SetsFile    string `sh:"sets_file"`
	SetsFileNew string `sh:"sets_file_new"`
	UnitDir     string `sh:"unit_dir"`
	SetPrefix   string `sh:"set_prefix"`
	Operator    string `sh:"operator"`
	ExpectV4    string `sh:"expect_v4"`
	ExpectV6    string `sh:"expect_v6"`
	Install     bool   `sh:"install"`
	Enable      bool   `sh:"enable_restore"`
	RulesInert  bool   `sh:"rules_inert"`
	ApplyDelay  string `sh:"apply_delay"`  // seconds, for sleep
	RevertAfter int    `sh:"revert_after"` // whole seconds, rounded up: never before the runner expects it
	LockTTL     int    `sh:"lock_ttl"`     // whole seconds
	AptLimit    int    `sh:"apt_limit"`    // whole seconds
	ExitLocked  int    `sh:"exit_locked"`
	ExitDrift   int    `sh:"exit_drift"`
	ExitTest    int    `sh:"exit_test_failed"`
	ExitApply   int    `sh:"exit_apply_failed"`
	ExitNotNew  int    `sh:"exit_not_new"`
	ExitNotLive int    `sh:"exit_not_applied"`
	ExitPersist int    `sh:"exit_persist_failed"`
}

func (c *Change) header() runHeader {
	p := c.Paths.resolved()
	return runHeader{
		PATH: p.PATH, Run: c.Run,
		State: p.StateDir, RunDir: c.RunDir(), Upload: c.UploadDir(),
		Gens: p.generationsDir(), Current: p.currentFile(), Lock: p.lockFile(),
		Foreign:  p.foreignFile(),
		RulesDir: p.RulesDir, RulesV4: p.rules("v4"), RulesV6: p.rules("v6"),
		RulesV4New: p.rulesNew("v4", c.Run), RulesV6New: p.rulesNew("v6", c.Run),
		SystemdDir: p.SystemdDir, BootID: p.BootID, Uptime: p.Uptime, PolicyRCD: p.PolicyRCD,
		NamesDir: p.namesDir(), SetsFile: p.setsFile(), SetsFileNew: p.RulesDir + "/.ipsets.piwall-" + c.Run,
		UnitDir: p.UnitDir, SetPrefix: firewall.SetPrefix,
		Operator: c.Operator, ExpectV4: c.ExpectV4, ExpectV6: c.ExpectV6,
		Install: c.Install, Enable: c.EnableRestore, RulesInert: c.RulesInert,
		ApplyDelay:  fmt.Sprintf("%.2f", ApplyDelay.Seconds()),
		RevertAfter: int((c.RevertAfter + time.Second - 1) / time.Second), LockTTL: int(c.lockTTL() / time.Second),
		AptLimit:   int(AptLimit / time.Second),
		ExitLocked: ExitLocked, ExitDrift: ExitDrift, ExitTest: ExitTestFailed,
		ExitApply: ExitApplyFailed, ExitNotNew: ExitNotNew, ExitNotLive: ExitNotApplied, ExitPersist: ExitPersistFailed,
	}
}

// refreshHeader is what the names' refresher knows.
type refreshHeader struct {
	PATH      string `sh:"PATH"`
	NamesDir  string `sh:"names_dir"`
	RulesV4   string `sh:"rules_v4"`
	RulesV6   string `sh:"rules_v6"`
	SetsFile  string `sh:"sets_file"`
	SetPrefix string `sh:"set_prefix"`
	MaxElem   int    `sh:"set_maxelem"`
}

// refresher is the names' refresher as confirm installs it.
func (c *Change) refresher() string {
	p := c.Paths.resolved()
	return assignments(refreshHeader{PATH: p.PATH, NamesDir: p.namesDir(), RulesV4: p.rules("v4"), RulesV6: p.rules("v6"), SetsFile: p.setsFile(),
		SetPrefix: firewall.SetPrefix, MaxElem: firewall.SetMaxElem}) + scriptFile("refresh.sh")
}

// factsHeader is what the facts script knows: where to look, and the
// marker that heads its sections.
type factsHeader struct {
	PATH       string `sh:"PATH"`
	Marker     string `sh:"marker"`
	Current    string `sh:"current"`
	Gens       string `sh:"gens"`
	Lock       string `sh:"lockfile"`
	Foreign    string `sh:"foreign_state"`
	NamesDir   string `sh:"names_dir"`
	RunsDir    string `sh:"runs_dir"`
	RulesV4    string `sh:"rules_v4"`
	RulesV6    string `sh:"rules_v6"`
	ResolvConf string `sh:"resolv_conf"`
	BootID     string `sh:"boot_id"`
	RulesDir   string `sh:"rules_dir"`
	SystemdDir string `sh:"systemd_dir"`
	PluginsDir string `sh:"plugins_dir"`
	UFWConf    string `sh:"ufw_conf"`
	Mountinfo  string `sh:"mountinfo"`
	Cmdline    string `sh:"cmdline"`
	Proc       string `sh:"proc"`
}

// assignments writes a header: one line "name=value" per field of the
// struct h, value through Quote. Strings, ints and bools only ("true",
// "false"), so that nothing else can reach it.
func assignments(h any) string {
	var b strings.Builder
	v := reflect.ValueOf(h)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("sh")
		var val string
		switch fv := v.Field(i); fv.Kind() {
		case reflect.String:
			val = fv.String()
		case reflect.Int:
			val = strconv.FormatInt(fv.Int(), 10)
		case reflect.Bool:
			val = strconv.FormatBool(fv.Bool())
		default:
			panic("modules: header field " + f.Name + " of kind " + fv.Kind().String())
		}
		if name == "" {
			panic("modules: header field " + f.Name + " has no sh tag")
		}
		b.WriteString(name + "=" + Quote(val) + "\n")
	}
	return b.String()
}

// script is the text of one of a run's scripts, as uploaded.
func (c *Change) script(name string) string {
	return assignments(c.header()) + scriptFile("common.sh") + scriptFile(name)
}
