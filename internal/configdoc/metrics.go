package configdoc

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Metric is one Prometheus metric declared in the source.
type Metric struct {
	// Name is the full name (namespace_subsystem_name).
	Name string
	// Type is counter, gauge, histogram or summary.
	Type string
	Help string
	// Labels are the variable labels when given as a literal list (the
	// second argument of New*Vec), else nil.
	Labels []string
	// File and Line locate the declaration (File relative to the root).
	File string
	Line int
}

const prometheusPath = "github.com/prometheus/client_golang/prometheus"

var optsTypes = map[string]string{
	"CounterOpts":   "counter",
	"GaugeOpts":     "gauge",
	"HistogramOpts": "histogram",
	"SummaryOpts":   "summary",
}

// ScanMetrics finds the metrics declared in the non-test Go files under the
// module's directories dirs (relative to the root), skipping testdata and
// nested modules. A declaration is a prometheus.{Counter,Gauge,Histogram,
// Summary}Opts literal or a prometheus.NewDesc call (custom collectors).
// Its name and help may be string literals, package constants, "+"
// concatenations of those, or parameters of the enclosing function (a
// top-level function, or a function literal assigned to a local variable):
// then every call of that function with literal arguments declares one
// metric, and a NewDesc's type is read from a prometheus.GaugeValue or
// CounterValue beside the call. Labels are read from []string literals and
// prometheus.Labels literals, inline or in a variable. Anything else is an
// ErrUnresolvedMetric error naming the place, so the inventory is never
// silently incomplete. The result is sorted by name; a name declared twice
// appears once (its first place).
func ScanMetrics(m Module, dirs ...string) ([]Metric, error) {
	pkgDirs := map[string]bool{}
	for _, d := range dirs {
		base := filepath.Join(m.Root, filepath.FromSlash(d))
		err := filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() {
				if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
					pkgDirs[filepath.Dir(path)] = true
				}
				return nil
			}
			if path != base && (e.Name() == "testdata" || strings.HasPrefix(e.Name(), ".") || fileExists(filepath.Join(path, "go.mod"))) {
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSource, err)
		}
	}
	sorted := make([]string, 0, len(pkgDirs))
	for d := range pkgDirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)

	var all []Metric
	var errs []error
	for _, dir := range sorted {
		src, err := parseDir(dir, false)
		if err != nil {
			return nil, err
		}
		ms, perrs := scanPackage(m, src)
		all = append(all, ms...)
		errs = append(errs, perrs...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	out := all[:0]
	for i, mt := range all {
		if i > 0 && mt.Name == all[i-1].Name {
			continue
		}
		out = append(out, mt)
	}
	return out, nil
}

func scanPackage(m Module, src *pkgSource) ([]Metric, []error) {
	pkg := &pkgScope{src: src, consts: map[string]string{}, vars: map[string]ast.Expr{}}
	for _, c := range src.stringConsts() {
		pkg.consts[c.Name] = c.Value
	}
	for _, f := range src.files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						pkg.vars[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	var out []Metric
	var errs []error
	for _, f := range src.files {
		promName := importName(f, prometheusPath)
		if promName == "" {
			continue
		}
		var stack []ast.Node
		ast.Inspect(f, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			stack = append(stack, n)
			var decl *declaration
			switch x := n.(type) {
			case *ast.CompositeLit:
				decl = optsDeclaration(x, promName, stack)
			case *ast.CallExpr:
				decl = newDescDeclaration(x, promName)
			}
			if decl == nil {
				return true
			}
			pos := src.fset.Position(n.Pos())
			base := Metric{Type: decl.typ, File: m.Rel(pos.Filename), Line: pos.Line, Labels: decl.labels}
			ms, err := pkg.resolve(decl, base, stack, promName)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s:%d: %w", ErrUnresolvedMetric, base.File, base.Line, err))
				return true
			}
			out = append(out, ms...)
			return true
		})
	}
	return out, errs
}

// pkgScope is what names in a package can resolve to.
type pkgScope struct {
	src    *pkgSource
	consts map[string]string
	vars   map[string]ast.Expr // package-level var initialisers
}

// declaration is one metric declaration found in the source, before its
// name is resolved: the expressions of its parts.
type declaration struct {
	namespace, subsystem, name, help ast.Expr // nil when absent
	labelsExpr                       ast.Expr // variable labels, nil when absent
	constLabelsExpr                  ast.Expr
	typ                              string // "" when told by the call site
	labels                           []string
}

func optsDeclaration(lit *ast.CompositeLit, promName string, stack []ast.Node) *declaration {
	sel, ok := lit.Type.(*ast.SelectorExpr)
	if !ok {
		return nil
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != promName {
		return nil
	}
	typ, ok := optsTypes[sel.Sel.Name]
	if !ok {
		return nil
	}
	d := &declaration{typ: typ}
	for _, elt := range lit.Elts {
		kv, ok := elt.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, ok := kv.Key.(*ast.Ident)
		if !ok {
			continue
		}
		switch key.Name {
		case "Namespace":
			d.namespace = kv.Value
		case "Subsystem":
			d.subsystem = kv.Value
		case "Name":
			d.name = kv.Value
		case "Help":
			d.help = kv.Value
		case "ConstLabels":
			d.constLabelsExpr = kv.Value
		}
	}
	// prometheus.New*Vec(opts, []string{...}): the variable labels.
	if len(stack) >= 2 {
		if call, ok := stack[len(stack)-2].(*ast.CallExpr); ok && len(call.Args) >= 2 && call.Args[0] == lit {
			d.labelsExpr = call.Args[1]
		}
	}
	return d
}

// newDescDeclaration recognises prometheus.NewDesc(fqName, help,
// variableLabels, constLabels), used by custom collectors.
func newDescDeclaration(call *ast.CallExpr, promName string) *declaration {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "NewDesc" || len(call.Args) != 4 {
		return nil
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != promName {
		return nil
	}
	return &declaration{name: call.Args[0], help: call.Args[1], labelsExpr: call.Args[2]}
}

// errParam marks an expression that needs a parameter's value.
var errParam = errors.New("needs a parameter")

// evalString evaluates a string expression: literals, constants, "+",
// parentheses, and parameters bound in env (evaluated without env: one
// level of call is followed).
func (p *pkgScope) evalString(e ast.Expr, env map[string]ast.Expr, params map[string]bool) (string, error) {
	switch x := e.(type) {
	case nil:
		return "", nil
	case *ast.BasicLit:
		if s, ok := stringLit(x); ok {
			return s, nil
		}
	case *ast.ParenExpr:
		return p.evalString(x.X, env, params)
	case *ast.BinaryExpr:
		if x.Op == token.ADD {
			a, err := p.evalString(x.X, env, params)
			if err != nil {
				return "", err
			}
			b, err := p.evalString(x.Y, env, params)
			return a + b, err
		}
	case *ast.Ident:
		if arg, ok := env[x.Name]; ok {
			return p.evalString(arg, nil, nil)
		}
		if params[x.Name] {
			return "", errParam
		}
		if v, ok := p.consts[x.Name]; ok {
			return v, nil
		}
		return "", fmt.Errorf("%s is not a literal, constant or parameter", x.Name)
	}
	return "", fmt.Errorf("unsupported expression %T", e)
}

// evalStrings evaluates a []string literal, or a variable (local := or
// package var) initialised with one; nil when it cannot.
func (p *pkgScope) evalStrings(e ast.Expr, fn ast.Node, keys bool) []string {
	if id, ok := e.(*ast.Ident); ok {
		if init := localInit(fn, id.Name); init != nil {
			e = init
		} else if init, ok := p.vars[id.Name]; ok {
			e = init
		}
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var out []string
	for _, elt := range lit.Elts {
		if kv, ok := elt.(*ast.KeyValueExpr); ok && keys {
			elt = kv.Key
		}
		s, ok := stringLit(elt)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// localInit finds the initialiser of a local variable name in fn.
func localInit(fn ast.Node, name string) ast.Expr {
	if fn == nil {
		return nil
	}
	var init ast.Expr
	ast.Inspect(fn, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || init != nil {
			return init == nil
		}
		for j, lhs := range as.Lhs {
			if l, ok := lhs.(*ast.Ident); ok && l.Name == name && j < len(as.Rhs) {
				init = as.Rhs[j]
			}
		}
		return true
	})
	return init
}

// resolve evaluates a declaration; when its parts use parameters of the
// enclosing function, once per call of that function.
func (p *pkgScope) resolve(d *declaration, base Metric, stack []ast.Node, promName string) ([]Metric, error) {
	fn, params, order := enclosingFunc(stack)
	outer := outermostDecl(stack)
	if base.Labels == nil && d.labelsExpr != nil {
		base.Labels = p.evalStrings(d.labelsExpr, outer, false)
	}
	if d.constLabelsExpr != nil {
		base.Labels = append(p.evalStrings(d.constLabelsExpr, outer, true), base.Labels...)
	}
	eval := func(env map[string]ast.Expr) (Metric, error) {
		mt := base
		var parts [4]string
		for i, e := range []ast.Expr{d.namespace, d.subsystem, d.name, d.help} {
			s, err := p.evalString(e, env, params)
			if err != nil {
				return mt, err
			}
			parts[i] = s
		}
		mt.Name, mt.Help = fullName(parts[0], parts[1], parts[2]), parts[3]
		if mt.Name == "" {
			return mt, errors.New("empty metric name")
		}
		return mt, nil
	}
	mt, err := eval(nil)
	if err == nil {
		if mt.Type == "" {
			mt.Type = "untyped"
		}
		return []Metric{mt}, nil
	}
	if !errors.Is(err, errParam) {
		return nil, err
	}
	sites, err := p.callSites(fn, stack)
	if err != nil {
		return nil, err
	}
	var out []Metric
	for _, site := range sites {
		env := map[string]ast.Expr{}
		for i, name := range order {
			if i < len(site.call.Args) {
				env[name] = site.call.Args[i]
			}
		}
		mt, err := eval(env)
		if err != nil {
			pos := p.src.fset.Position(site.call.Pos())
			return nil, fmt.Errorf("call at line %d: %w", pos.Line, err)
		}
		if mt.Type == "" {
			mt.Type = valueTypeNear(site.parent, promName)
		}
		out = append(out, mt)
	}
	if len(out) == 0 {
		return nil, errors.New("the name is a parameter of a function that is never called")
	}
	return out, nil
}

// enclosingFunc is the innermost function around the declaration, its
// parameter names as a set and in order.
func enclosingFunc(stack []ast.Node) (ast.Node, map[string]bool, []string) {
	for i := len(stack) - 1; i >= 0; i-- {
		var ft *ast.FuncType
		switch f := stack[i].(type) {
		case *ast.FuncLit:
			ft = f.Type
		case *ast.FuncDecl:
			ft = f.Type
		default:
			continue
		}
		set := map[string]bool{}
		var order []string
		for _, fld := range ft.Params.List {
			if len(fld.Names) == 0 {
				order = append(order, "")
			}
			for _, n := range fld.Names {
				set[n.Name] = true
				order = append(order, n.Name)
			}
		}
		return stack[i], set, order
	}
	return nil, nil, nil
}

func outermostDecl(stack []ast.Node) ast.Node {
	for _, n := range stack {
		if fd, ok := n.(*ast.FuncDecl); ok {
			return fd
		}
	}
	return nil
}

type callSite struct {
	call   *ast.CallExpr
	parent ast.Node // the node holding the call
}

// callSites finds the calls of fn: for a function literal assigned to a
// local variable, the calls of that variable in the enclosing declaration;
// for a top-level function, its calls anywhere in the package.
func (p *pkgScope) callSites(fn ast.Node, stack []ast.Node) ([]callSite, error) {
	var name string
	var scope []ast.Node
	switch f := fn.(type) {
	case *ast.FuncDecl:
		if f.Recv != nil {
			return nil, errors.New("metric name is a parameter of a method")
		}
		name = f.Name.Name
		for _, file := range p.src.files {
			scope = append(scope, file)
		}
	case *ast.FuncLit:
		for i := len(stack) - 1; i >= 0; i-- {
			if as, ok := stack[i].(*ast.AssignStmt); ok {
				for j, rhs := range as.Rhs {
					if rhs == f && j < len(as.Lhs) {
						if id, ok := as.Lhs[j].(*ast.Ident); ok {
							name = id.Name
						}
					}
				}
			}
		}
		if decl := outermostDecl(stack); decl != nil {
			scope = append(scope, decl)
		}
	}
	if name == "" || len(scope) == 0 {
		return nil, errors.New("metric name is a parameter of a function literal not assigned to a local variable")
	}
	var sites []callSite
	for _, root := range scope {
		var st []ast.Node
		ast.Inspect(root, func(n ast.Node) bool {
			if n == nil {
				st = st[:len(st)-1]
				return true
			}
			if c, ok := n.(*ast.CallExpr); ok {
				if id, ok := c.Fun.(*ast.Ident); ok && id.Name == name {
					var parent ast.Node
					if len(st) > 0 {
						parent = st[len(st)-1]
					}
					sites = append(sites, callSite{call: c, parent: parent})
				}
			}
			st = append(st, n)
			return true
		})
	}
	return sites, nil
}

// valueTypeNear reads the metric type from a prometheus.{Gauge,Counter}Value
// next to a descriptor call (as in a table {desc(...), prometheus.GaugeValue,
// ...}).
func valueTypeNear(parent ast.Node, promName string) string {
	typ := "untyped"
	if parent == nil {
		return typ
	}
	ast.Inspect(parent, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == promName {
			switch sel.Sel.Name {
			case "GaugeValue":
				typ = "gauge"
			case "CounterValue":
				typ = "counter"
			}
		}
		return true
	})
	return typ
}

func fullName(namespace, subsystem, name string) string {
	var parts []string
	for _, p := range []string{namespace, subsystem, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

// importName is the local name of the import of path in f, "" if absent.
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil || p != path {
			continue
		}
		if imp.Name != nil {
			return imp.Name.Name
		}
		return path[strings.LastIndex(path, "/")+1:]
	}
	return ""
}
