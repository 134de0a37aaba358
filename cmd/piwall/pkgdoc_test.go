package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs holds every package of the repository to exactly one
// doc comment, which names the package's job.
func TestPackageDocs(t *testing.T) {
	dirs := map[string]bool{}
	filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if len(dirs) < 8 {
		t.Fatalf("found %d package directories, want every package of the repository", len(dirs))
	}
	for dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		docs := map[string][]string{} // package name → files with a doc comment
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := docs[f.Name.Name]; !ok {
				docs[f.Name.Name] = nil
			}
			if f.Doc != nil {
				docs[f.Name.Name] = append(docs[f.Name.Name], filepath.Base(file))
			}
		}
		for name, withDoc := range docs {
			if len(withDoc) != 1 {
				t.Errorf("package %s in %s has %d doc comments (%s), want exactly one", name, dir, len(withDoc), strings.Join(withDoc, ", "))
			}
		}
	}
}
