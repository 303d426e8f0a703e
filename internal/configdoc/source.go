package configdoc

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

// pkgSource is the parsed non-test Go files of one package directory.
type pkgSource struct {
	fset  *token.FileSet
	files []*ast.File // sorted by file name, for deterministic output
}

// parseDir parses the .go files of dir with comments; _test.go files only
// when withTests (config types declared in tests are described too, but
// metrics declared in tests are not exported by any service).
func parseDir(dir string, withTests bool) (*pkgSource, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSource, err)
	}
	src := &pkgSource{fset: token.NewFileSet()}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || (!withTests && strings.HasSuffix(name, "_test.go")) {
			continue
		}
		f, err := parser.ParseFile(src.fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSource, err)
		}
		src.files = append(src.files, f)
	}
	sort.Slice(src.files, func(i, j int) bool {
		return src.fset.File(src.files[i].Pos()).Name() < src.fset.File(src.files[j].Pos()).Name()
	})
	return src, nil
}

// structType finds the declaration of the named struct type and the file
// holding it.
func (s *pkgSource) structType(name string) (*ast.StructType, string, bool) {
	for _, f := range s.files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if ts.Name.Name != name {
					continue
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return nil, "", false
				}
				return st, s.fset.File(f.Pos()).Name(), true
			}
		}
	}
	return nil, "", false
}

// fieldDocs maps each field name of st to its doc comment, flattened to one
// line. A field without a comment directly below a commented one (no blank
// line between them, as in "TLSCertPath and TLSKeyPath enable TLS") shares
// that comment.
func (s *pkgSource) fieldDocs(st *ast.StructType) map[string]string {
	docs := map[string]string{}
	prevDoc, prevLine := "", -10
	for _, f := range st.Fields.List {
		line := s.fset.Position(f.Pos()).Line
		doc := commentText(f.Doc)
		if doc == "" {
			doc = commentText(f.Comment)
		}
		if doc == "" && line == prevLine+1 {
			doc = prevDoc
		}
		for _, n := range f.Names {
			docs[n.Name] = doc
		}
		if len(f.Names) == 0 { // embedded
			docs[typeExprName(f.Type)] = doc
		}
		prevDoc, prevLine = doc, s.fset.Position(f.End()).Line
	}
	return docs
}

// stringConsts returns the package-level constants with a string literal
// value, with their doc comments (the spec's, else its group's).
func (s *pkgSource) stringConsts() []constDecl {
	var out []constDecl
	for _, f := range s.files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					v, ok := stringLit(vs.Values[i])
					if !ok {
						continue
					}
					doc := commentText(vs.Doc)
					if doc == "" {
						doc = commentText(vs.Comment)
					}
					if doc == "" {
						doc = commentText(gd.Doc)
					}
					out = append(out, constDecl{Name: n.Name, Value: v, Doc: doc})
				}
			}
		}
	}
	return out
}

type constDecl struct {
	Name, Value, Doc string
}

func commentText(g *ast.CommentGroup) string {
	if g == nil {
		return ""
	}
	return strings.Join(strings.Fields(g.Text()), " ")
}

func typeExprName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.StarExpr:
		return typeExprName(t.X)
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(bl.Value)
	return v, err == nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
