package inventory

import (
	"bufio"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The ssh_config tests hold ParseSSHConfig to ssh_config(5). Where the ssh
// client is installed, TestSSHConfigAgainstOpenSSH also asks it (ssh -G,
// which prints the configuration it would use without connecting) about
// every case, so that the expectations below are OpenSSH's and not ours.
//
//	go test ./inventory -run SSHConfig
//	go test ./inventory -run '^$' -fuzz FuzzParseSSHConfig -fuzztime 60s

// lookupCase is a config, a host alias and what each keyword gives for it.
type lookupCase struct {
	name   string
	config string
	alias  string
	want   map[string][]string // keyword → Lookup; a missing keyword is not checked
}

var lookupCases = []lookupCase{
	{
		name:   "first value wins across sections",
		config: "Host pi-01\n  User admin\nHost *\n  User pi\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin", "pi"}},
	},
	{
		name:   "first value wins within a section",
		config: "Host pi-01\n  Port 2222\n  Port 2200\n",
		alias:  "pi-01",
		want:   map[string][]string{"Port": {"2222", "2200"}},
	},
	{
		name:   "identity files accumulate in file order",
		config: "Host pi-01\n  IdentityFile ~/.ssh/pi\nHost pi-*\n  IdentityFile ~/.ssh/fleet\nHost *\n  IdentityFile ~/.ssh/id_ed25519\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"~/.ssh/pi", "~/.ssh/fleet", "~/.ssh/id_ed25519"}},
	},
	{
		name:   "star matches any run of characters",
		config: "Host *.lan\n  User lan\n",
		alias:  "pi-01.lan",
		want:   map[string][]string{"User": {"lan"}},
	},
	{
		name:   "star matches the empty string",
		config: "Host pi-01*\n  User star\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"star"}},
	},
	{
		name:   "question mark matches one character",
		config: "Host pi-0?\n  User one\nHost pi-??\n  User two\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"one", "two"}},
	},
	{
		name:   "question mark does not match two characters",
		config: "Host pi-0?\n  User one\n",
		alias:  "pi-010",
		want:   map[string][]string{"User": nil},
	},
	{
		name:   "negated pattern excludes a host the others match",
		config: "Host pi-* !pi-03\n  User fleet\n",
		alias:  "pi-03",
		want:   map[string][]string{"User": nil},
	},
	{
		name:   "negated pattern leaves the other hosts",
		config: "Host pi-* !pi-03\n  User fleet\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"fleet"}},
	},
	{
		name:   "negation wins whatever its place on the line",
		config: "Host !pi-03 pi-*\n  User fleet\n",
		alias:  "pi-03",
		want:   map[string][]string{"User": nil},
	},
	{
		name:   "negation alone matches nothing",
		config: "Host !pi-03\n  User neg\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": nil},
	},
	{
		name:   "several patterns on one host line",
		config: "Host pi-01 pi-02 kiosk-*\n  User several\n",
		alias:  "pi-02",
		want:   map[string][]string{"User": {"several"}},
	},
	{
		name:   "several patterns on one host line, the last one matching",
		config: "Host pi-01 pi-02 kiosk-*\n  User several\n",
		alias:  "kiosk-7",
		want:   map[string][]string{"User": {"several"}},
	},
	{
		name:   "host patterns are case-sensitive",
		config: "Host PI-01\n  User upper\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": nil},
	},
	{
		name:   "parameters before the first host apply to all",
		config: "User everyone\nPort 2022\n\nHost pi-01\n  HostName 10.0.0.11\n",
		alias:  "other",
		want:   map[string][]string{"User": {"everyone"}, "Port": {"2022"}, "HostName": nil},
	},
	{
		name:   "parameters before the first host win over later sections",
		config: "User everyone\nHost pi-01\n  User admin\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"everyone", "admin"}},
	},
	{
		name:   "match block skipped whole",
		config: "Match host pi-01\n  User matched\n  HostName matched.lan\nHost pi-01\n  User hosted\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"hosted"}, "HostName": nil},
	},
	{
		name:   "match block ends at the next host line",
		config: "Host pi-01\n  User before\nMatch all\n  User matched\nHost *\n  User after\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"before", "after"}},
	},
	{
		name:   "keyword=value",
		config: "Host=pi-01\n  User=admin\n  Port=2222\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin"}, "Port": {"2222"}},
	},
	{
		name:   "keyword = value with spaces around the sign",
		config: "Host pi-01\n  User = admin\n  Port =2222\n  HostName= pi.lan\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin"}, "Port": {"2222"}, "HostName": {"pi.lan"}},
	},
	{
		name:   "tabs separate keyword and value",
		config: "Host\tpi-01\n\tUser\tadmin\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin"}},
	},
	{
		name:   "double-quoted value with spaces",
		config: "Host pi-01\n  IdentityFile \"/home/op/my keys/pi\"\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"/home/op/my keys/pi"}},
	},
	{
		name:   "single-quoted value with spaces",
		config: "Host pi-01\n  IdentityFile '/home/op/my keys/pi'\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"/home/op/my keys/pi"}},
	},
	{
		name:   "quotes in the middle of a value",
		config: "Host pi-01\n  IdentityFile /home/op/\"my keys\"/pi\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"/home/op/my keys/pi"}},
	},
	{
		name:   "backslash escapes a space",
		config: "Host pi-01\n  IdentityFile /home/op/my\\ keys/pi\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"/home/op/my keys/pi"}},
	},
	{
		name:   "quoted host pattern",
		config: "Host \"pi-01\"\n  User quoted\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"quoted"}},
	},
	{
		name:   "%h in HostName is the alias",
		config: "Host pi-*\n  HostName %h.fleet.example.com\n",
		alias:  "pi-01",
		want:   map[string][]string{"HostName": {"pi-01.fleet.example.com"}},
	},
	{
		name:   "%h in IdentityFile is the host name HostName gives",
		config: "Host pi-*\n  HostName %h.lan\n  IdentityFile ~/.ssh/keys/%h\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"~/.ssh/keys/pi-01.lan"}},
	},
	{
		name:   "%h without HostName is the alias",
		config: "Host pi-*\n  IdentityFile ~/.ssh/keys/%h\n  UserKnownHostsFile ~/.ssh/known_hosts.%h\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"~/.ssh/keys/pi-01"}, "UserKnownHostsFile": {"~/.ssh/known_hosts.pi-01"}},
	},
	{
		name:   "%% is a percent sign",
		config: "Host pi-01\n  HostName 100%%.lan\n  IdentityFile ~/.ssh/%%h\n",
		alias:  "pi-01",
		want:   map[string][]string{"HostName": {"100%.lan"}, "IdentityFile": {"~/.ssh/%h"}},
	},
	{
		name:   "comments and blank lines",
		config: "# the fleet\n\nHost pi-01\n\n  # the admin account\n  User admin\n   \n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin"}},
	},
	{
		name:   "comment after a value",
		config: "Host pi-01 # the first Pi\n  User admin # not pi\n  Port 2222 #no space\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin"}, "Port": {"2222"}},
	},
	{
		name:   "hash inside a value is not a comment",
		config: "Host pi-01\n  IdentityFile ~/.ssh/key#1\n  User \"#admin\"\n",
		alias:  "pi-01",
		want:   map[string][]string{"IdentityFile": {"~/.ssh/key#1"}, "User": {"#admin"}},
	},
	{
		name:   "keywords are case-insensitive",
		config: "HOST pi-01\n  hostNAME pi.lan\n  USER admin\n  identityfile ~/.ssh/pi\n  proxyJump bastion\n",
		alias:  "pi-01",
		want: map[string][]string{
			"HostName": {"pi.lan"}, "user": {"admin"}, "IDENTITYFILE": {"~/.ssh/pi"}, "ProxyJump": {"bastion"},
		},
	},
	{
		name:   "windows line ends",
		config: "Host pi-01\r\n  User crlf\r\n  Port 2222\r\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"crlf"}, "Port": {"2222"}},
	},
	{
		name:   "unknown keywords ignored",
		config: "Host pi-01\n  ForwardAgent yes\n  LocalForward 8080 localhost:80\n  User admin\n",
		alias:  "pi-01",
		want:   map[string][]string{"User": {"admin"}, "ForwardAgent": nil},
	},
	{
		name:   "proxy jump none",
		config: "Host pi-01\n  ProxyJump none\nHost *\n  ProxyJump bastion\n",
		alias:  "pi-01",
		want:   map[string][]string{"ProxyJump": {"none", "bastion"}},
	},
	{
		name:   "proxy jump with several hops",
		config: "Host pi-*\n  ProxyJump admin@bastion:2222,inner\n",
		alias:  "pi-01",
		want:   map[string][]string{"ProxyJump": {"admin@bastion:2222,inner"}},
	},
	{
		name:   "no section matches",
		config: "Host pi-01\n  User admin\n",
		alias:  "pi-02",
		want:   map[string][]string{"User": nil, "HostName": nil, "IdentityFile": nil},
	},
	{
		name:   "empty file",
		config: "",
		alias:  "pi-01",
		want:   map[string][]string{"User": nil},
	},
}

func TestSSHConfigLookup(t *testing.T) {
	for _, tc := range lookupCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParseSSHConfig(t, tc.config)
			for key, want := range tc.want {
				if got := cfg.Lookup(tc.alias, key); !reflect.DeepEqual(got, want) {
					t.Errorf("Lookup(%q, %q) = %q, want %q", tc.alias, key, got, want)
				}
				wantFirst := ""
				if len(want) > 0 {
					wantFirst = want[0]
				}
				if got := cfg.Get(tc.alias, key); got != wantFirst {
					t.Errorf("Get(%q, %q) = %q, want %q", tc.alias, key, got, wantFirst)
				}
			}
		})
	}
}

func TestSSHConfigKnownHostsFiles(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         [][]string
	}{
		{"one file", "Host pi-01\n  UserKnownHostsFile ~/.ssh/pi_hosts\n", [][]string{{"~/.ssh/pi_hosts"}}},
		{"several files on one line", "Host pi-01\n  UserKnownHostsFile ~/.ssh/a /etc/ssh/b ~/.ssh/c\n", [][]string{{"~/.ssh/a", "/etc/ssh/b", "~/.ssh/c"}}},
		{"a quoted file with a space", "Host pi-01\n  UserKnownHostsFile ~/.ssh/a \"/mnt/shared keys/b\"\n", [][]string{{"~/.ssh/a", "/mnt/shared keys/b"}}},
		{"several lines, first one counts", "Host pi-01\n  UserKnownHostsFile ~/.ssh/a ~/.ssh/b\nHost *\n  UserKnownHostsFile ~/.ssh/c\n", [][]string{{"~/.ssh/a", "~/.ssh/b"}, {"~/.ssh/c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParseSSHConfig(t, tc.config)
			if got := cfg.lines("pi-01", "UserKnownHostsFile"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("lines(pi-01, UserKnownHostsFile) = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSSHConfigNil(t *testing.T) {
	var cfg *SSHConfig
	if got := cfg.Lookup("pi-01", "User"); got != nil {
		t.Errorf("nil config: Lookup = %q, want nil", got)
	}
	if got := cfg.Get("pi-01", "User"); got != "" {
		t.Errorf("nil config: Get = %q, want empty", got)
	}
}

// errorCases are configs ParseSSHConfig refuses, as ssh does: the line
// number must be in the error.
var errorCases = []struct {
	name, config string
	line         string // "line N" that the error must name
	msg          string // and a part of what it says
}{
	{"keyword without value", "Host pi-01\n  HostName pi.lan\n  User\n", "line 3", "no value"},
	{"keyword with only a comment", "Host pi-01\n  User # nobody\n", "line 2", "no value"},
	{"host without pattern", "User pi\nHost\n  User admin\n", "line 2", "no value"},
	{"unterminated double quote", "Host pi-01\n  IdentityFile \"/home/op/my keys\n", "line 2", "unterminated quote"},
	{"unterminated single quote", "# fleet\n\nHost 'pi-01\n", "line 3", "unterminated quote"},
	{"unterminated quote in a section that does not match", "Host other\n  User ok\nHost nothing\n  User \"x\n", "line 4", "unterminated quote"},
	{"unterminated quote in a skipped match block", "Match host x\n  User \"x\n", "line 2", "unterminated quote"},
	{"empty quoted value", "Host pi-01\n  User \"\"\n", "line 2", "empty value"},
	{"two values for a single-valued keyword", "Host pi-01\n  User admin pi\n", "line 2", "one value"},
}

func TestParseSSHConfigErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseSSHConfig(tc.config)
			if err == nil {
				t.Fatalf("ParseSSHConfig(%q) = %v, nil; want an error naming %s", tc.config, cfg, tc.line)
			}
			if !strings.Contains(err.Error(), tc.line+":") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseSSHConfig(%q): got error %q, want one naming %q and saying %q", tc.config, err, tc.line, tc.msg)
			}
		})
	}
}

// TestSSHConfigAgainstOpenSSH asks ssh -G what it makes of each case. It
// compares what both read: HostName, User, Port, ProxyJump, IdentityFile
// (when no token needs expanding: ssh -G prints those as written) and
// UserKnownHostsFile. Match blocks are left out, since piwall skips them
// on purpose where ssh evaluates them.
func TestSSHConfigAgainstOpenSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("skipped: no ssh client to compare with (apt-get install openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		t.Skipf("skipped: the current user: %v", err)
	}
	dir := t.TempDir()
	for _, tc := range lookupCases {
		if strings.Contains(strings.ToLower(tc.config), "match") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "config")
			if err := os.WriteFile(file, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			theirs, err := sshG(file, tc.alias)
			if err != nil {
				t.Fatalf("ssh -G: %v", err)
			}
			cfg := mustParseSSHConfig(t, tc.config)
			hostname := cfg.Get(tc.alias, "HostName")
			if hostname == "" {
				hostname = tc.alias
			}
			if got, want := strings.ToLower(hostname), first(theirs["hostname"]); got != want {
				t.Errorf("hostname: got %q, ssh -G says %q", got, want)
			}
			for _, key := range []string{"user", "port"} {
				if got := cfg.Get(tc.alias, key); got != "" && got != first(theirs[key]) {
					t.Errorf("%s: got %q, ssh -G says %q", key, got, first(theirs[key]))
				}
			}
			jump := cfg.Get(tc.alias, "ProxyJump")
			if jump == "none" {
				jump = ""
			}
			if want := first(theirs["proxyjump"]); jump != want {
				t.Errorf("proxyjump: got %q, ssh -G says %q", jump, want)
			}
			if ids := cfg.Lookup(tc.alias, "IdentityFile"); len(ids) > 0 && !strings.Contains(tc.config, "%") {
				if !reflect.DeepEqual(ids, theirs["identityfile"]) {
					t.Errorf("identityfile: got %q, ssh -G says %q", ids, theirs["identityfile"])
				}
			}
			if files := cfg.lines(tc.alias, "UserKnownHostsFile"); len(files) > 0 {
				got := strings.Join(files[0], " ")
				got = strings.ReplaceAll(got, "~", u.HomeDir)
				if want := strings.Join(theirs["userknownhostsfile"], " "); got != want {
					t.Errorf("userknownhostsfile: got %q, ssh -G says %q", got, want)
				}
			}
		})
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "config")
			if err := os.WriteFile(file, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			if theirs, err := sshG(file, "pi-01"); err == nil {
				t.Errorf("ssh -G accepts %q (%v); ParseSSHConfig refuses it", tc.config, theirs)
			}
		})
	}
}

// sshG runs ssh -G with only the given config file and returns each
// keyword's values.
func sshG(file, alias string) (map[string][]string, error) {
	cmd := exec.Command("ssh", "-G", "-F", file, alias)
	cmd.Stdin = nil
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	values := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), " ")
		if key == "userknownhostsfile" {
			values[key] = strings.Fields(value)
			continue
		}
		values[key] = append(values[key], value)
	}
	return values, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func mustParseSSHConfig(t testing.TB, text string) *SSHConfig {
	t.Helper()
	cfg, err := ParseSSHConfig(text)
	if err != nil {
		t.Fatalf("ParseSSHConfig(%q): %v", text, err)
	}
	return cfg
}

// FuzzParseSSHConfig feeds ParseSSHConfig arbitrary files: it must not
// panic, and what it accepts must answer lookups for any alias.
func FuzzParseSSHConfig(f *testing.F) {
	requireSeeds(f, "FuzzParseSSHConfig", 8)
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := ParseSSHConfig(text)
		if err != nil {
			if cfg != nil {
				t.Errorf("ParseSSHConfig returned %v with error %v", cfg, err)
			}
			return
		}
		for _, alias := range []string{"pi-01", "PI-01", "", "*", "!pi", "[fd00::1]", "10.0.0.11", "a%hb"} {
			for _, key := range []string{"HostName", "User", "Port", "IdentityFile", "ProxyJump", "UserKnownHostsFile", "Host", "Match"} {
				values := cfg.Lookup(alias, key)
				if got := cfg.Get(alias, key); len(values) > 0 && got != values[0] {
					t.Errorf("Get(%q, %q) = %q, Lookup's first is %q", alias, key, got, values[0])
				}
			}
			_ = Env{SSHConfig: cfg, Home: "/home/op", LocalUser: "op"}.target(alias, "", 0)
		}
	})
}

// requireSeeds fails the fuzz test when its seed corpus under testdata/
// has fewer than min files: a fuzz test pointed at a directory that moved
// must not pass by fuzzing nothing.
func requireSeeds(f *testing.F, name string, min int) {
	f.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	if len(entries) < min {
		f.Fatalf("seed corpus testdata/fuzz/%s has %d files, want at least %d", name, len(entries), min)
	}
}
