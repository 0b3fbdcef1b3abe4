package platformcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CodeAccess reads from the services' source what each does on Kafka: the
// `Produces:`, `Topics:` and `Group:` fields of the service.Spec / consumer
// literals in services/<name>/service.go, with events.Topic* constants
// (libs/events) and ports.* variables (services/<name>/internal/ports)
// resolved. An expression it cannot resolve is an error, so a new way of
// naming topics fails loudly instead of yielding an empty set.
func CodeAccess(repoRoot string, services []string) (map[string]Access, error) {
	events, err := packageValues(filepath.Join(repoRoot, "libs", "events"), nil)
	if err != nil {
		return nil, err
	}
	out := map[string]Access{}
	for _, svc := range services {
		dir := filepath.Join(repoRoot, "services", svc)
		ports, err := packageValues(filepath.Join(dir, "internal", "ports"), map[string]map[string][]string{"events": events})
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		own, err := packageValues(dir, map[string]map[string][]string{"events": events})
		if err != nil {
			return nil, err
		}
		scope := map[string]map[string][]string{"events": events, "ports": ports, "": own}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(dir, "service.go"), nil, 0)
		if err != nil {
			return nil, err
		}
		var access Access
		var walkErr error
		ast.Inspect(f, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok || walkErr != nil {
				return walkErr == nil
			}
			key, ok := kv.Key.(*ast.Ident)
			if !ok {
				return true
			}
			switch key.Name {
			case "Produces", "Topics", "Group":
				values, err := resolve(kv.Value, scope)
				if err != nil {
					walkErr = fmt.Errorf("%s: %s: %w", fset.Position(kv.Pos()), key.Name, err)
					return false
				}
				switch key.Name {
				case "Produces":
					access.Produces = appendNew(access.Produces, values...)
				case "Topics":
					access.Reads = appendNew(access.Reads, values...)
				case "Group":
					if len(values) != 1 || (access.Group != "" && access.Group != values[0]) {
						walkErr = fmt.Errorf("%s: more than one consumer group (%v, %s)", fset.Position(kv.Pos()), values, access.Group)
						return false
					}
					access.Group = values[0]
				}
			}
			return true
		})
		if walkErr != nil {
			return nil, walkErr
		}
		if len(access.Produces) == 0 || len(access.Reads) == 0 || access.Group == "" {
			return nil, fmt.Errorf("services/%s/service.go: found produces %v, reads %v, group %q: expected all three", svc, access.Produces, access.Reads, access.Group)
		}
		out[svc] = access
	}
	return out, nil
}

// packageValues collects a package's top-level string constants and
// []string variables (non-test files), resolved within scope.
func packageValues(dir string, scope map[string]map[string][]string) (map[string][]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, os.ErrNotExist
	}
	values := map[string][]string{}
	local := map[string]map[string][]string{"": values}
	for k, v := range scope {
		local[k] = v
	}
	var pending []*ast.ValueSpec
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || (g.Tok != token.CONST && g.Tok != token.VAR) {
				continue
			}
			for _, spec := range g.Specs {
				pending = append(pending, spec.(*ast.ValueSpec))
			}
		}
	}
	// Constants may refer to one another in any order: resolve until no progress.
	for progress := true; progress; {
		progress = false
		rest := pending[:0]
		for _, vs := range pending {
			done := true
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if _, ok := values[name.Name]; ok {
					continue
				}
				if v, err := resolve(vs.Values[i], local); err == nil {
					values[name.Name] = v
					progress = true
				} else {
					done = false
				}
			}
			if !done {
				rest = append(rest, vs)
			}
		}
		pending = rest
	}
	return values, nil
}

// resolve evaluates a string or []string expression: string literals,
// identifiers and pkg.Name selectors in scope, []string{...} literals,
// a one-argument call (cfg.Topic(x): the topic prefix, empty in a deployment)
// and `prefix + name` (the prefix is dropped the same way).
func resolve(e ast.Expr, scope map[string]map[string][]string) ([]string, error) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return nil, fmt.Errorf("not a string: %s", x.Value)
		}
		s, err := strconv.Unquote(x.Value)
		return []string{s}, err
	case *ast.Ident:
		if v, ok := scope[""][x.Name]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("unknown identifier %s", x.Name)
	case *ast.SelectorExpr:
		pkg, ok := x.X.(*ast.Ident)
		if !ok {
			return nil, fmt.Errorf("unsupported selector")
		}
		if v, ok := scope[pkg.Name][x.Sel.Name]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("unknown %s.%s", pkg.Name, x.Sel.Name)
	case *ast.CompositeLit:
		var out []string
		for _, elt := range x.Elts {
			v, err := resolve(elt, scope)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	case *ast.CallExpr:
		if len(x.Args) != 1 {
			return nil, fmt.Errorf("unsupported call with %d arguments", len(x.Args))
		}
		return resolve(x.Args[0], scope)
	case *ast.BinaryExpr:
		if sel, ok := x.X.(*ast.SelectorExpr); x.Op == token.ADD && ok && sel.Sel.Name == "TopicPrefix" {
			return resolve(x.Y, scope)
		}
		return nil, fmt.Errorf("unsupported expression")
	default:
		return nil, fmt.Errorf("unsupported expression %T", e)
	}
}

func appendNew(list []string, values ...string) []string {
	for _, v := range values {
		if !contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
