package configdoc

import (
	"encoding"
	"flag"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Key is one TOML key of a service's configuration.
type Key struct {
	// Key is the dotted TOML path: "listen_addr", "server.workers", or
	// "timeline[].slot_name" for a key of each [[timeline]] table.
	Key string
	// Flag is the command-line flag ("--listen-addr"), "" if none.
	Flag string
	// Type describes the TOML value ("string", "duration", ...).
	Type string
	// Default is the default as a TOML value ("\"127.0.0.1:51051\"", "4",
	// "[]"), or "" for keys of array tables, which have no default.
	Default string
	// Doc is the field's doc comment on one line, with the struct's Go field
	// names replaced by their TOML keys.
	Doc string
}

// EnvVar is an environment variable that a service package declares (an
// exported string constant whose name ends in "Env").
type EnvVar struct {
	Name, Doc string
}

// Reference is the generated description of one service's configuration.
type Reference struct {
	// Type is the config struct's Go type ("pageserver.Config").
	Type string
	// File is the file declaring it, relative to the module root.
	File string
	Keys []Key
	Env  []EnvVar
}

type flagBinder interface{ RegisterFlags(fs *flag.FlagSet) }

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// Describe builds the reference of the config struct cfg points to (its
// values are the defaults, as returned by the service's DefaultConfig). If
// cfg has a RegisterFlags(*flag.FlagSet) method, it is called on a throwaway
// FlagSet to learn which flag sets which field; it must only bind flags.
//
// Fields are walked the way BurntSushi/toml decodes them: exported fields
// with a toml tag name (or the Go name), `toml:"-"` skipped, embedded structs
// flattened, struct fields as [tables] and slices of structs as [[tables]].
// A field of a kind TOML cannot hold (func, chan, interface, map) without
// `toml:"-"` is an ErrUnsupported error.
func Describe(m Module, cfg any) (Reference, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return Reference{}, fmt.Errorf("%w: Describe needs a pointer to a struct, got %T", ErrUnsupported, cfg)
	}
	flags := map[uintptr]string{}
	if fb, ok := cfg.(flagBinder); ok {
		fs := flag.NewFlagSet("configdoc", flag.ContinueOnError)
		fb.RegisterFlags(fs)
		fs.VisitAll(func(f *flag.Flag) {
			fv := reflect.ValueOf(f.Value)
			if fv.Kind() == reflect.Pointer {
				flags[fv.Pointer()] = "--" + f.Name
			}
		})
	}
	d := describer{m: m, flags: flags, src: map[string]*pkgSource{}}
	t := v.Elem().Type()
	ref := Reference{Type: shortTypeName(t)}
	src, err := d.source(t)
	if err != nil {
		return Reference{}, err
	}
	_, file, ok := src.structType(t.Name())
	if !ok {
		return Reference{}, fmt.Errorf("%w: struct type %s in %s", ErrSource, t.Name(), t.PkgPath())
	}
	ref.File = m.Rel(file)
	if ref.Keys, err = d.walk(v.Elem(), "", true); err != nil {
		return Reference{}, err
	}
	for _, c := range src.stringConsts() {
		if strings.HasSuffix(c.Name, "Env") && isExported(c.Name) {
			ref.Env = append(ref.Env, EnvVar{Name: c.Value, Doc: c.Doc})
		}
	}
	return ref, nil
}

type describer struct {
	m     Module
	flags map[uintptr]string
	src   map[string]*pkgSource // by package path
}

func (d *describer) source(t reflect.Type) (*pkgSource, error) {
	if s, ok := d.src[t.PkgPath()]; ok {
		return s, nil
	}
	dir, err := d.m.Dir(t.PkgPath())
	if err != nil {
		return nil, err
	}
	s, err := parseDir(dir, true)
	if err != nil {
		return nil, err
	}
	d.src[t.PkgPath()] = s
	return s, nil
}

// docs returns the doc comments of t's fields and the map from Go field
// names to TOML keys used to rewrite them.
func (d *describer) docs(t reflect.Type) (map[string]string, error) {
	src, err := d.source(t)
	if err != nil {
		return nil, err
	}
	st, _, ok := src.structType(t.Name())
	if !ok {
		return nil, fmt.Errorf("%w: struct type %s in %s", ErrSource, t.Name(), t.PkgPath())
	}
	return src.fieldDocs(st), nil
}

// walk describes the fields of the struct v; addressable says whether
// v's fields are the real config fields (flags can point at them) rather
// than a zero element of an array table.
func (d *describer) walk(v reflect.Value, prefix string, addressable bool) ([]Key, error) {
	t := v.Type()
	docs, err := d.docs(t)
	if err != nil {
		return nil, err
	}
	rename := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := tomlName(f); ok && !f.Anonymous {
			rename[f.Name] = prefix + name
		}
	}
	var keys []Key
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, ok := tomlName(f)
		if !ok {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && f.Tag.Get("toml") == "" && f.Type.Kind() == reflect.Struct {
			sub, err := d.walk(fv, prefix, addressable)
			if err != nil {
				return nil, err
			}
			keys = append(keys, sub...)
			continue
		}
		key := Key{Key: prefix + name, Doc: rewriteNames(docs[f.Name], rename)}
		if addressable {
			key.Flag = d.flags[fv.Addr().Pointer()]
		}
		switch {
		case isText(f.Type):
			key.Type = textTypeName(f.Type)
		case f.Type.Kind() == reflect.Struct:
			// A table shares its address with its first field: only
			// leaves have flags.
			key.Type, key.Flag = "table", ""
			sub, err := d.walk(fv, key.Key+".", addressable)
			if err != nil {
				return nil, err
			}
			keys = append(keys, key)
			keys = append(keys, sub...)
			continue
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && !isText(f.Type.Elem()):
			key.Type = "array of tables"
			key.Default = fmt.Sprintf("none (%d)", fv.Len())
			if fv.Len() == 0 {
				key.Default = "none"
			}
			sub, err := d.walk(reflect.New(f.Type.Elem()).Elem(), key.Key+"[].", false)
			if err != nil {
				return nil, err
			}
			keys = append(keys, key)
			keys = append(keys, sub...)
			continue
		default:
			key.Type, err = basicTypeName(f.Type)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s (%s): give it `toml:\"-\"` or teach configdoc its type", ErrUnsupported, t.Name(), f.Name, f.Type)
			}
		}
		if addressable {
			key.Default, err = tomlValue(fv)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
			}
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// tomlName is the key BurntSushi/toml uses for f; false means skipped.
func tomlName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("toml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, true
}

func isText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// textTypeName names the types of internal/config by what a user writes.
func textTypeName(t reflect.Type) string {
	switch t.Name() {
	case "Duration":
		return `duration ("250ms", "30s", "5m")`
	case "ByteSize":
		return `byte size ("8KiB", "64MiB", "1GiB")`
	}
	return "string (" + t.Name() + ")"
}

func basicTypeName(t reflect.Type) (string, error) {
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer", nil
	case reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.Slice, reflect.Array:
		elem, err := basicTypeName(t.Elem())
		if err != nil && !isText(t.Elem()) {
			return "", err
		}
		if isText(t.Elem()) {
			elem = textTypeName(t.Elem())
		}
		return "array of " + elem, nil
	}
	return "", ErrUnsupported
}

// tomlValue formats v as a TOML value.
func tomlValue(v reflect.Value) (string, error) {
	if tm, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := tm.MarshalText()
		if err != nil {
			return "", fmt.Errorf("configdoc: formatting default: %w", err)
		}
		return strconv.Quote(string(b)), nil
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String()), nil
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), nil
	case reflect.Slice, reflect.Array:
		parts := make([]string, v.Len())
		for i := range v.Len() {
			p, err := tomlValue(v.Index(i))
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("%w: default of kind %s", ErrUnsupported, v.Kind())
}

var identRE = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)

// rewriteNames replaces the struct's Go field names in doc by their TOML
// keys in backquotes, so the reference speaks the file's language.
func rewriteNames(doc string, rename map[string]string) string {
	return identRE.ReplaceAllStringFunc(doc, func(w string) string {
		if k, ok := rename[w]; ok {
			return "`" + k + "`"
		}
		return w
	})
}

// shortTypeName is "pkgname.Type" (the package's name, not its path).
func shortTypeName(t reflect.Type) string { return t.String() }

func isExported(name string) bool { return name != "" && name[0] >= 'A' && name[0] <= 'Z' }
