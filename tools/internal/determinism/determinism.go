// Package determinism checks the determinism rules of the services' event
// handling (services/README.md, "Determinism") by reading their Go source:
// a handler that reads the wall clock or draws a random id emits something
// different each time it runs, and neither a redelivery nor a replay can
// then reproduce it.
package determinism

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Forbidden are the calls the rules forbid, by import path and function:
// the wall clock (time.Now and the functions that read it) and fresh random
// ids or numbers.
var Forbidden = map[string]map[string]string{
	// Timers and tickers stay allowed: they decide when a loop runs (a
	// deadline sweep), not what it writes, which comes from the clock.
	"time": {"Now": "the wall clock: use the injected clock (Deps.Now)", "Since": "reads the wall clock", "Until": "reads the wall clock"},
	"github.com/google/uuid": {"New": "a random id: derive it (uuid.NewSHA1, events.DeriveID)", "NewString": "a random id",
		"NewRandom": "a random id", "NewV7": "a time-based id", "NewV1": "a time-based id", "NewV6": "a time-based id",
		"NewUUID": "a time-based id"},
	"github.com/sagasuite/sagasuite/libs/events": {"NewID": "a fresh UUIDv7: derive it with events.DeriveID"},
	"math/rand":    {"*": "randomness"},
	"math/rand/v2": {"*": "randomness"},
	"crypto/rand":  {"*": "randomness"},
}

// Violation is one forbidden call.
type Violation struct {
	File     string // slash-separated, relative to the root given to Check
	Line     int
	Function string // "Type.Method" or "Func" ("" at package level)
	Call     string // "time.Now"
	Why      string
}

// Key is how an allow-list names a violation: file, function and call
// (no line, so edits around it do not break the list).
func (v Violation) Key() string { return v.File + ":" + v.Function + ":" + v.Call }

func (v Violation) String() string {
	return fmt.Sprintf("%s:%d: %s calls %s (%s)", v.File, v.Line, v.Function, v.Call, v.Why)
}

// Check reads every non-test Go file of each package directory (relative
// to root; a trailing "/..." includes subdirectories) and returns the
// forbidden calls, sorted by file and line.
func Check(root string, packages []string) ([]Violation, error) {
	var out []Violation
	for _, pkg := range packages {
		dir, recursive := strings.CutSuffix(pkg, "/...")
		base := filepath.Join(root, filepath.FromSlash(dir))
		if st, err := os.Stat(base); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("package %s: no directory %s", pkg, base)
		}
		err := filepath.WalkDir(base, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != base && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			vs, err := CheckSource(filepath.ToSlash(rel), src)
			out = append(out, vs...)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out, nil
}

// CheckSource returns the forbidden calls in one file's source.
func CheckSource(name string, src []byte) ([]Violation, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	// Local import names of the watched packages.
	imported := map[string]string{} // local name → import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if _, watched := Forbidden[path]; !watched {
			continue
		}
		local := path[strings.LastIndex(path, "/")+1:]
		if path == "math/rand/v2" {
			local = "rand"
		}
		if imp.Name != nil {
			local = imp.Name.Name
		}
		imported[local] = path
	}
	var out []Violation
	for _, decl := range f.Decls {
		fn := ""
		if fd, ok := decl.(*ast.FuncDecl); ok {
			fn = fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				fn = receiverName(fd.Recv.List[0].Type) + "." + fn
			}
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			path, ok := imported[id.Name]
			if !ok {
				return true
			}
			why, bad := Forbidden[path][sel.Sel.Name]
			if !bad {
				why, bad = Forbidden[path]["*"]
			}
			if bad && ast.IsExported(sel.Sel.Name) {
				out = append(out, Violation{File: name, Line: fset.Position(sel.Pos()).Line, Function: fn,
					Call: id.Name + "." + sel.Sel.Name, Why: why})
			}
			return true
		})
	}
	return out, nil
}

func receiverName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return receiverName(t.X)
	case *ast.IndexExpr: // generic receiver
		return receiverName(t.X)
	case *ast.IndexListExpr:
		return receiverName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}
