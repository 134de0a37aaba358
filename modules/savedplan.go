package modules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/piwall/piwall/modules/firewall"
)

// SavedPlanFormat is the version of the saved-plan format this piwall
// writes and the only one it reads. Adding a field keeps the version;
// changing what a field means, or removing one, takes the next.
const SavedPlanFormat = 1

// SavedPlan is what `piwall plan --out FILE` writes and `piwall apply FILE`
// applies: each host's desired rulesets with the fingerprint of the facts
// they were planned against, so that apply refuses a host that changed
// since, and the plan they came from, so that apply can refuse plan files
// that changed. Marshal and ParseSavedPlan are the pair that writes and
// reads it; the JSON field names are those of the first release and stay.
type SavedPlan struct {
	Format     int         `json:"format"`
	PlanPath   string      `json:"plan_path"`   // the plan as `piwall plan` was given it
	PlanDigest string      `json:"plan_digest"` // plans.Plan.Digest of it
	Hosts      []SavedHost `json:"hosts"`       // in the order planned, each once
}

// SavedHost is one host of a saved plan.
type SavedHost struct {
	Host        string `json:"host"`        // its label
	Fingerprint string `json:"fingerprint"` // Facts.Fingerprint as planned
	V4          string `json:"v4"`          // desired rulesets, canonical text (Ruleset.Text)
	V6          string `json:"v6"`
	Foreign     string `json:"foreign,omitempty"` // the declaration of others' rules (Foreign.Text)
	Sets        string `json:"sets,omitempty"`    // the address sets the rules match (ChangeSet.Sets)
	Names       string `json:"names,omitempty"`   // the names' refresher's configuration (ChangeSet.NamesConf)
}

// ErrHostChanged is the error of SavedPlan.ChangeSet for a host whose facts
// are not those the plan was saved against.
var ErrHostChanged = errors.New("the host changed since the plan was saved")

// NewSavedPlan saves the change sets of one `piwall plan` run. Nil sets,
// those of hosts that failed, are left out: apply then reports those hosts
// as not in the saved plan.
func NewSavedPlan(planPath, planDigest string, sets []*ChangeSet) *SavedPlan {
	sp := &SavedPlan{Format: SavedPlanFormat, PlanPath: planPath, PlanDigest: planDigest}
	for _, cs := range sets {
		if cs == nil || cs.Desired == nil {
			continue
		}
		sp.Hosts = append(sp.Hosts, SavedHost{
			Host: cs.Host, Fingerprint: cs.Fingerprint,
			V4: cs.Desired.V4.Text(), V6: cs.Desired.V6.Text(), Foreign: cs.Foreign.Text(),
			Sets: cs.Sets, Names: cs.NamesConf,
		})
	}
	return sp
}

// Marshal returns the saved plan as a file: indented JSON ending in a
// newline, so that it reads well in a diff and in a review.
func (sp *SavedPlan) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing the saved plan: %w", err)
	}
	return append(b, '\n'), nil
}

// IsPlanSource reports whether path, as given to `piwall apply`, names a
// plan to load (a directory, or a file ending in .hcl) rather than a saved
// plan, which is every other file.
//
// The name decides, not the content: sniffing the first byte would read a
// plan file that starts with '{' as a saved plan, and a saved plan that
// cannot be read (permissions, a typo in its name) as "not a saved plan",
// then report it as a broken plan. Here a path that cannot be examined is
// read as a saved plan, so that ReadSavedPlan reports the real error. A
// plan file not named *.hcl is read as a saved plan too, and fails with
// the hint that a plan is a .hcl file or a directory of them.
func IsPlanSource(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".hcl") {
		return true
	}
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// ReadSavedPlan reads the saved plan in the file at path with
// ParseSavedPlan. A file that cannot be read is an error, never "not a
// saved plan".
func ReadSavedPlan(path string) (*SavedPlan, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, WithHint(fmt.Errorf("reading saved plan: %w", err), "a plan is a .hcl file or a directory of them; a saved plan, the file piwall plan --out wrote")
	}
	if err != nil {
		return nil, fmt.Errorf("reading saved plan: %w", err)
	}
	return ParseSavedPlan(b, path)
}

// notSavedPlanHint is for a file read as a saved plan that is not one.
const notSavedPlanHint = "a saved plan is a file that piwall plan --out wrote; a plan is a .hcl file or a directory of them"

// ParseSavedPlan reads a saved plan written by Marshal; source names it in
// errors (the file's path). It checks what apply relies on: the format, the
// plan it came from, each host once, and rulesets that parse, which it
// keeps in their canonical text. Each error names source.
func ParseSavedPlan(data []byte, source string) (*SavedPlan, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("saved plan %s: "+format, append([]any{source}, args...)...)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, WithHint(fail("the file is empty"), notSavedPlanHint)
	}
	// The format first, alone: a newer format may not fit the fields below,
	// and "written by a newer piwall" says more than a JSON type error.
	var head struct {
		Format json.RawMessage `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, jsonError(fail, data, err)
	}
	var format int
	if head.Format == nil || json.Unmarshal(head.Format, &format) != nil || format < 1 {
		return nil, WithHint(fail("no format version: not a saved plan"), notSavedPlanHint)
	}
	if format > SavedPlanFormat {
		return nil, WithHint(fail("written by a newer piwall: format %d, this piwall reads %d", format, SavedPlanFormat),
			"apply it with the piwall that saved it, or run piwall plan --out again with this one")
	}
	var sp SavedPlan
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, jsonError(fail, data, err)
	}
	if sp.PlanPath == "" {
		return nil, WithHint(fail("no plan_path: the plan it came from is unknown"), "run piwall plan --out again")
	}
	if sp.PlanDigest == "" {
		return nil, WithHint(fail("no plan_digest: whether the plan changed since cannot be told"), "run piwall plan --out again")
	}
	seen := map[string]bool{}
	for i := range sp.Hosts {
		h := &sp.Hosts[i]
		switch {
		case h.Host == "":
			return nil, fail("host %d has no name", i+1)
		case seen[h.Host]:
			return nil, WithHint(fail("host %s is listed twice", h.Host), "the file was edited or corrupted: run piwall plan --out again")
		case h.Fingerprint == "":
			return nil, fail("host %s has no fingerprint", h.Host)
		}
		seen[h.Host] = true
		for _, r := range []struct {
			fam  firewall.Family
			text *string
		}{{firewall.IPv4, &h.V4}, {firewall.IPv6, &h.V6}} {
			rs, err := parseSaved(*r.text)
			if err != nil {
				return nil, WithHint(fail("host %s, %s rules: %w", h.Host, r.fam, err), "the file was edited or corrupted: run piwall plan --out again")
			}
			*r.text = rs.Text()
		}
		if _, err := firewall.ParseForeign(h.Foreign); err != nil {
			return nil, WithHint(fail("host %s: %w", h.Host, err), "the file was edited or corrupted: run piwall plan --out again")
		}
	}
	return &sp, nil
}

// parseSaved parses a saved ruleset, which is never empty: a desired
// ruleset has at least the filter table.
func parseSaved(text string) (*firewall.Ruleset, error) {
	rs, err := firewall.Parse(text)
	if err != nil {
		return nil, err
	}
	if len(rs.Tables) == 0 {
		return nil, errors.New("no tables")
	}
	return rs, nil
}

// jsonError says what is wrong with a file that is not the JSON of a saved
// plan: cut short (a write that did not finish), not JSON at all, or JSON
// of another shape.
func jsonError(fail func(string, ...any) error, data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax) && cutShort(data):
		return WithHint(fail("the file is cut short: %w", err), "run piwall plan --out again")
	case errors.As(err, &syntax):
		return WithHint(fail("corrupt, not JSON: %w", err), notSavedPlanHint)
	case errors.As(err, &typ):
		return WithHint(fail("corrupt: %w", err), notSavedPlanHint)
	}
	return WithHint(fail("%w", err), notSavedPlanHint)
}

// cutShort reports whether data is the start of a JSON value that ends
// too early: a decoder, unlike Unmarshal, tells that apart from a bad
// character.
func cutShort(data []byte) bool {
	var v any
	return errors.Is(json.NewDecoder(bytes.NewReader(data)).Decode(&v), io.ErrUnexpectedEOF)
}

// ChangeSet is host's change set from the saved plan: its saved desired
// rulesets compared with its facts now, with Source the saved plan's
// digest (the caller checks that the plan files still have it). It fails with ErrHostChanged when
// the facts' fingerprint is not the one planned against (the live or
// persisted rules, or the generation, moved), and when the saved plan has
// no rulesets for the host.
func (sp *SavedPlan) ChangeSet(host string, f *Facts) (*ChangeSet, error) {
	for _, h := range sp.Hosts {
		if h.Host != host {
			continue
		}
		foreign, err := firewall.ParseForeign(h.Foreign)
		if err != nil {
			return nil, err
		}
		if h.Fingerprint != f.Fingerprint(foreign) {
			return nil, WithHint(ErrHostChanged, "run piwall plan --out again")
		}
		d := &firewall.Desired{}
		if d.V4, err = parseSaved(h.V4); err != nil {
			return nil, fmt.Errorf("saved IPv4 rules: %w", err)
		}
		if d.V6, err = parseSaved(h.V6); err != nil {
			return nil, fmt.Errorf("saved IPv6 rules: %w", err)
		}
		cs, err := Compare(host, d, foreign, f, h.Sets)
		if err != nil {
			return nil, err
		}
		cs.NamesConf = h.Names
		cs.Source = sp.PlanDigest
		return cs, nil
	}
	return nil, WithHint(errors.New("the saved plan has no rulesets for this host"),
		"it failed or was not a target when the plan was saved: run piwall plan --out again")
}
