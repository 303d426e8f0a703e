package pgtest

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// confMarker separates initdb's postgresql.conf from what pgtest appends, so
// that the file can be regenerated (for a new port) without growing.
const confMarker = "\n# ---- written by internal/pgtest; settings below override the ones above ----\n"

// confName matches a GUC name, including custom "ext.name" settings.
var confName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// walLevels are the values PostgreSQL 15 accepts for wal_level.
var walLevels = []string{"minimal", "replica", "logical"}

// validateOptions reports every problem in opts at once.
func validateOptions(opts Options) error {
	var problems []string
	if opts.WALLevel != "" && !slices.Contains(walLevels, opts.WALLevel) {
		problems = append(problems, fmt.Sprintf("WALLevel %q is not one of %v", opts.WALLevel, walLevels))
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Conf)) {
		if !confName.MatchString(k) {
			problems = append(problems, fmt.Sprintf("Conf key %q is not a setting name", k))
		}
		if strings.ContainsAny(opts.Conf[k], "\n\r\x00") {
			problems = append(problems, fmt.Sprintf("Conf[%q] contains a line break or NUL", k))
		}
	}
	for _, a := range opts.InitdbArgs {
		if a == "-D" || strings.HasPrefix(a, "--pgdata") || strings.HasPrefix(a, "-U") || strings.HasPrefix(a, "--username") {
			problems = append(problems, fmt.Sprintf("InitdbArgs must not set the data directory or user (%q)", a))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrBadOption, strings.Join(problems, "; "))
	}
	return nil
}

// quoteConf quotes a value for postgresql.conf. Any setting accepts a quoted
// value; inside quotes the parser unescapes backslashes and doubled quotes.
func quoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `''`)
	return "'" + v + "'"
}

// confSettings is what pgtest needs to know to render postgresql.conf.
type confSettings struct {
	port       int
	socketDir  string
	walLevel   string
	userConf   map[string]string
	initdbConf string // postgresql.conf as initdb wrote it
}

// renderConf returns the whole postgresql.conf: initdb's file, then pgtest's
// settings, then Options.Conf (sorted by key) last so that it overrides both.
func renderConf(c confSettings) []byte {
	base, _, _ := strings.Cut(c.initdbConf, confMarker)
	var b strings.Builder
	b.WriteString(base)
	b.WriteString(confMarker)
	walLevel := c.walLevel
	if walLevel == "" {
		walLevel = "replica"
	}
	// wal_level=minimal refuses to start with WAL senders configured.
	walSenders := "10"
	if walLevel == "minimal" {
		walSenders = "0"
	}
	for _, kv := range [][2]string{
		{"listen_addresses", "127.0.0.1"},
		{"port", strconv.Itoa(c.port)},
		{"unix_socket_directories", c.socketDir},
		{"wal_level", walLevel},
		{"max_wal_senders", walSenders},
		{"max_replication_slots", "10"},
		// Strata tests WAL durability; a test cluster must not lie about fsync.
		{"fsync", "on"},
		// The server's stderr goes to postgres.log in the cluster directory
		// (pg_ctl -l); no collector process, no log rotation.
		{"logging_collector", "off"},
		{"log_destination", "stderr"},
	} {
		fmt.Fprintf(&b, "%s = %s\n", kv[0], quoteConf(kv[1]))
	}
	if len(c.userConf) > 0 {
		b.WriteString("# Options.Conf\n")
		for _, k := range slices.Sorted(maps.Keys(c.userConf)) {
			fmt.Fprintf(&b, "%s = %s\n", k, quoteConf(c.userConf[k]))
		}
	}
	return []byte(b.String())
}

// hbaConf trusts local connections and TCP connections from 127.0.0.1,
// ordinary and replication alike. Nothing else can connect.
const hbaConf = `# written by internal/pgtest
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
`

// quoteConnValue quotes a keyword/value connection string value when needed.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `\'`)
	return "'" + v + "'"
}
