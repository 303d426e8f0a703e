package configdoc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Module is a Go module checkout: where its source is and what it is called.
type Module struct {
	// Root is the directory holding go.mod.
	Root string
	// Path is the module path declared in go.mod.
	Path string
}

// FindModule returns the module whose go.mod is at or above dir.
func FindModule(dir string) (Module, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Module{}, fmt.Errorf("configdoc: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			path := modulePath(data)
			if path == "" {
				return Module{}, fmt.Errorf("%w: %s has no module line", ErrNoModule, filepath.Join(d, "go.mod"))
			}
			return Module{Root: d, Path: path}, nil
		}
		if filepath.Dir(d) == d {
			return Module{}, fmt.Errorf("%w at or above %s", ErrNoModule, dir)
		}
	}
}

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Dir returns the directory of the package with import path pkgPath, which
// must belong to the module.
func (m Module) Dir(pkgPath string) (string, error) {
	if pkgPath == m.Path {
		return m.Root, nil
	}
	rel, ok := strings.CutPrefix(pkgPath, m.Path+"/")
	if !ok {
		return "", fmt.Errorf("%w: package %s is not in module %s", ErrSource, pkgPath, m.Path)
	}
	return filepath.Join(m.Root, filepath.FromSlash(rel)), nil
}

// Rel returns path relative to the module root with forward slashes (for
// documents), or path itself when it is outside the root.
func (m Module) Rel(path string) string {
	rel, err := filepath.Rel(m.Root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return filepath.ToSlash(rel)
}
