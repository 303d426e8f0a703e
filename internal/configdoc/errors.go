package configdoc

import "errors"

// ErrNoModule is returned when no go.mod is found at or above the start
// directory.
var ErrNoModule = errors.New("configdoc: no go.mod found")

// ErrUnsupported is returned (wrapped, naming the field) for a config field
// whose type the reference cannot describe, so a new kind of field is never
// silently left out.
var ErrUnsupported = errors.New("configdoc: unsupported config field")

// ErrSource is returned (wrapped) when a package's source cannot be parsed or
// a type's declaration cannot be found in it.
var ErrSource = errors.New("configdoc: source not found")

// ErrUnresolvedMetric is returned (wrapped, naming file and line) when a
// metric's name is not a literal, a constant, or an argument of a local
// constructor call that the scanner can follow.
var ErrUnresolvedMetric = errors.New("configdoc: metric name not resolvable")
