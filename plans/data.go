package plans

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Fleets as data: a plan may read other files (a CSV or YAML list of
// hosts through file(), an Ansible inventory), each relative to the
// plan's directory. Every file read is kept with the plan's own files, so
// that diagnostics can show its lines and the plan's digest covers it.

// maxDataFile bounds a file a plan reads: a fleet's list, not a disk image.
const maxDataFile = 16 << 20

// dataFiles reads the files a plan refers to, relative to dir.
type dataFiles struct {
	dir   string
	files map[string]*hcl.File // by the name diagnostics give them
}

// resolve is path as the plan means it: ~/ is the home directory, a
// relative path is relative to the plan's directory.
func (df *dataFiles) resolve(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if filepath.IsAbs(path) || df.dir == "" {
		return path
	}
	return filepath.Join(df.dir, path)
}

// read returns the contents of path (resolved) and the name it goes by.
func (df *dataFiles) read(path string) (name string, src []byte, err error) {
	name = df.resolve(path)
	src, err = df.readName(name)
	return name, src, err
}

// readName returns the contents of the file name, as it is.
func (df *dataFiles) readName(name string) ([]byte, error) {
	if f, ok := df.files[name]; ok {
		return f.Bytes, nil
	}
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	src, err := io.ReadAll(io.LimitReader(fh, maxDataFile+1))
	if err != nil {
		return nil, err
	}
	if len(src) > maxDataFile {
		return nil, fmt.Errorf("%s is larger than %d MiB", name, maxDataFile>>20)
	}
	if df.files == nil {
		df.files = map[string]*hcl.File{}
	}
	df.files[name] = &hcl.File{Bytes: src}
	return src, nil
}

// fileFunc is Terraform's file(path): the contents of a UTF-8 text file,
// here relative to the plan's directory.
func (df *dataFiles) fileFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name, src, err := df.read(args[0].AsString())
			if err != nil {
				return cty.UnknownVal(cty.String), function.NewArgError(0, err)
			}
			if !utf8.Valid(src) {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "%s is not UTF-8 text", name)
			}
			return cty.StringVal(string(src)), nil
		},
	})
}
