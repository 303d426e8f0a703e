package config

import (
	"fmt"
	"strings"
)

// Problems collects every validation problem of a config so that Validate can
// report all of them at once instead of one per run. The zero value is ready
// to use.
//
//	var p config.Problems
//	if cfg.ListenAddr == "" {
//		p.Addf("listen_addr", "must not be empty")
//	}
//	return p.Err()
type Problems struct {
	list []error
}

// Addf records a problem with field (the TOML key path, e.g.
// "server.listen_addr"). format and args are as for fmt.Errorf, so %w keeps
// an underlying error reachable through errors.Is.
func (p *Problems) Addf(field, format string, args ...any) {
	p.list = append(p.list, fmt.Errorf("config: %s: %w", field, fmt.Errorf(format, args...)))
}

// Len returns the number of problems recorded.
func (p *Problems) Len() int { return len(p.list) }

// Err returns nil when no problem was recorded; otherwise an error wrapping
// ErrInvalid (and any error passed with %w) whose message holds every
// problem, one per line, each "config: <field>: <msg>".
func (p *Problems) Err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &invalidError{problems: append([]error(nil), p.list...)}
}

type invalidError struct {
	problems []error
}

func (e *invalidError) Error() string {
	var b strings.Builder
	for i, p := range e.problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *invalidError) Unwrap() []error {
	return append([]error{ErrInvalid}, e.problems...)
}
