package main

// validate --json: the plan's diagnostics for editors and CI annotators,
// in the shape of terraform validate -json (format_version, valid, the
// counts, and each diagnostic's severity, summary, detail, source range
// and snippet). Like the other JSON documents it is stable: fields are
// added, never renamed.

import (
	"bufio"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcled"
)

type jsonValidate struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Diagnostics   []jsonDiagnostic `json:"diagnostics"`
}

type jsonDiagnostic struct {
	Severity string       `json:"severity"` // error or warning
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *jsonRange   `json:"range,omitempty"`
	Snippet  *jsonSnippet `json:"snippet,omitempty"`
}

// jsonRange is a diagnostic's place: lines and columns count from 1,
// columns in characters (grapheme clusters, as HCL counts them), bytes
// from 0; the end is exclusive.
type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// jsonSnippet is the source the range is in: the whole lines it covers
// (code, from start_line), the byte offsets of the range within code,
// and the header of the block it is in (context), when there is one.
type jsonSnippet struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
}

func jsonValidation(files map[string]*hcl.File, diags hcl.Diagnostics) jsonValidate {
	doc := jsonValidate{FormatVersion: "1", Diagnostics: []jsonDiagnostic{}}
	for _, d := range diags {
		jd := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
			doc.WarningCount++
		} else {
			doc.ErrorCount++
		}
		if d.Subject != nil {
			r := *d.Subject
			jd.Range = &jsonRange{Filename: r.Filename, Start: jsonPosOf(r.Start), End: jsonPosOf(r.End)}
			if f := files[r.Filename]; f != nil && f.Bytes != nil {
				jd.Snippet = snippet(f, r, d.Context)
			}
		}
		doc.Diagnostics = append(doc.Diagnostics, jd)
	}
	doc.Valid = doc.ErrorCount == 0
	return doc
}

func jsonPosOf(p hcl.Pos) jsonPos { return jsonPos{Line: p.Line, Column: p.Column, Byte: p.Byte} }

// snippet is the source of a diagnostic as terraform validate -json
// gives it: the lines of the subject (and of its context, where the
// diagnostic has one), and where in them the subject is.
func snippet(f *hcl.File, subject hcl.Range, context *hcl.Range) *jsonSnippet {
	highlight := subject
	if highlight.End == (hcl.Pos{}) {
		highlight.End = highlight.Start
	}
	lines := highlight
	if context != nil {
		lines = hcl.RangeOver(lines, *context)
	}
	if lines.Empty() {
		lines.End.Byte++
		lines.End.Column++
	}
	if highlight.Empty() {
		highlight.End.Byte++
		highlight.End.Column++
	}
	s := &jsonSnippet{StartLine: lines.Start.Line}
	if c := hcled.ContextString(f, highlight.Start.Byte-1); c != "" {
		s.Context = &c
	}
	var code strings.Builder
	codeStart := -1
	sc := hcl.NewRangeScanner(f.Bytes, subject.Filename, bufio.ScanLines)
	for sc.Scan() {
		line := sc.Range()
		if line.Overlaps(lines) {
			if codeStart < 0 {
				codeStart = line.Start.Byte
			}
			code.Write(line.SliceBytes(f.Bytes))
			code.WriteByte('\n')
		}
	}
	s.Code = strings.TrimSuffix(code.String(), "\n")
	if codeStart < 0 {
		codeStart = 0
	}
	clamp := func(n int) int { return min(max(n, 0), len(s.Code)) }
	start := highlight.Start.Byte - codeStart
	s.HighlightStartOffset = clamp(start)
	s.HighlightEndOffset = clamp(start + highlight.End.Byte - highlight.Start.Byte)
	return s
}
