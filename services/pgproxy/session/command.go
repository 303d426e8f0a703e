package session

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/ids"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
	"github.com/stratadb/strata/services/pgproxy/wire"
)

// Kind names a command.
type Kind string

// The commands pgproxy accepts (neon-anchor.md §1.3 plus the seed's
// management commands, design D7).
const (
	KindPagestream     Kind = "pagestream"
	KindBasebackup     Kind = "basebackup"
	KindFullbackup     Kind = "fullbackup"
	KindTenantList     Kind = "tenant_list"
	KindTenantCreate   Kind = "tenant_create"
	KindBranchCreate   Kind = "branch_create"
	KindTimelineList   Kind = "timeline_list"
	KindIdentifySystem Kind = "identify_system"
	KindSet            Kind = "set"
)

// Command is a parsed simple query.
type Command struct {
	Kind Kind
	// Version is the pagestream protocol version.
	Version pagestream.Version
	// TenantID and TimelineID are validated 32-hex ids ("" when absent).
	TenantID   string
	TimelineID string
	// NewTimelineID is branch_create's new id ("" for auto).
	NewTimelineID string
	// LSN is the backup or branch LSN; 0 means latest.
	LSN lsn.LSN
	// PrevLSN is fullbackup's optional prev_lsn.
	PrevLSN lsn.LSN
	// Gzip asks basebackup to compress.
	Gzip bool
}

// usage lists the syntax for error hints.
var usage = map[Kind]string{
	KindPagestream:     "pagestream_v2|pagestream_v3 <tenant_id> <timeline_id>",
	KindBasebackup:     "basebackup <tenant_id> <timeline_id> [<lsn>|latest] [--gzip]",
	KindFullbackup:     "fullbackup <tenant_id> <timeline_id> [<lsn> [<prev_lsn>]]",
	KindTenantList:     "tenant_list",
	KindTenantCreate:   "tenant_create [<tenant_id>]",
	KindBranchCreate:   "branch_create <tenant_id> <new_timeline_id>|auto <ancestor_timeline_id> <lsn>|latest",
	KindTimelineList:   "timeline_list <tenant_id>",
	KindIdentifySystem: "identify_system [<tenant_id> <timeline_id>]",
}

func syntaxError(kind Kind, format string, args ...any) *wire.Error {
	e := wire.Errorf(wire.CodeSyntaxError, format, args...)
	if u, ok := usage[kind]; ok {
		e.Hint = "usage: " + u
	}
	return e
}

// ParseCommand parses one simple query. Words are separated by whitespace;
// the command word is case-insensitive (as Neon's PageServiceCmd::parse);
// ids must be 32 lowercase hex characters (design D6); LSNs are X/Y. Errors
// are *wire.Error with SQLSTATE 42601 and a usage hint.
func ParseCommand(query string) (Command, error) {
	fields := strings.Fields(query)
	if len(fields) == 0 {
		return Command{}, wire.Errorf(wire.CodeSyntaxError, "empty command")
	}
	word := strings.ToLower(fields[0])
	args := fields[1:]
	var c Command
	switch word {
	case "pagestream_v2", "pagestream_v3":
		c.Kind = KindPagestream
		c.Version = pagestream.V2
		if word == "pagestream_v3" {
			c.Version = pagestream.V3
		}
		if len(args) != 2 {
			return c, syntaxError(c.Kind, "%s takes exactly 2 arguments, got %d", word, len(args))
		}
		return c, c.parseIDs(args[0], args[1])
	case "basebackup":
		c.Kind = KindBasebackup
		if len(args) < 2 {
			return c, syntaxError(c.Kind, "basebackup takes at least 2 arguments, got %d", len(args))
		}
		if err := c.parseIDs(args[0], args[1]); err != nil {
			return c, err
		}
		seenLSN := false
		for _, a := range args[2:] {
			switch {
			case a == "--gzip":
				if c.Gzip {
					return c, syntaxError(c.Kind, "--gzip given twice")
				}
				c.Gzip = true
			case a == "--replica":
				return c, &wire.Error{Code: wire.CodeFeatureNotSupported, Message: "basebackup --replica is not supported by Strata yet", Hint: "omit --replica"}
			case strings.HasPrefix(a, "--"):
				return c, syntaxError(c.Kind, "unknown basebackup flag %q", truncate(a))
			case seenLSN:
				return c, syntaxError(c.Kind, "basebackup takes at most one LSN, got another: %q", truncate(a))
			default:
				seenLSN = true
				l, err := parseLSN(c.Kind, a, true)
				if err != nil {
					return c, err
				}
				c.LSN = l
			}
		}
		return c, nil
	case "fullbackup":
		c.Kind = KindFullbackup
		if len(args) < 2 || len(args) > 4 {
			return c, syntaxError(c.Kind, "fullbackup takes 2 to 4 arguments, got %d", len(args))
		}
		if err := c.parseIDs(args[0], args[1]); err != nil {
			return c, err
		}
		var err error
		if len(args) >= 3 {
			if c.LSN, err = parseLSN(c.Kind, args[2], true); err != nil {
				return c, err
			}
		}
		if len(args) == 4 {
			if c.PrevLSN, err = parseLSN(c.Kind, args[3], false); err != nil {
				return c, err
			}
		}
		return c, nil
	case "tenant_list":
		c.Kind = KindTenantList
		if len(args) != 0 {
			return c, syntaxError(c.Kind, "tenant_list takes no arguments")
		}
		return c, nil
	case "tenant_create":
		c.Kind = KindTenantCreate
		switch len(args) {
		case 0:
		case 1:
			if !auth.IsTenantID(args[0]) {
				return c, syntaxError(c.Kind, "tenant id %q is not 32 lowercase hexadecimal characters", truncate(args[0]))
			}
			c.TenantID = args[0]
		default:
			return c, syntaxError(c.Kind, "tenant_create takes at most 1 argument, got %d", len(args))
		}
		return c, nil
	case "branch_create":
		c.Kind = KindBranchCreate
		if len(args) != 4 {
			return c, syntaxError(c.Kind, "branch_create takes exactly 4 arguments, got %d", len(args))
		}
		if err := c.parseIDs(args[0], args[2]); err != nil {
			return c, err
		}
		if args[1] != "auto" {
			if !isTimelineID(args[1]) {
				return c, syntaxError(c.Kind, "new timeline id %q is not 32 lowercase hexadecimal characters or \"auto\"", truncate(args[1]))
			}
			c.NewTimelineID = args[1]
		}
		l, err := parseLSN(c.Kind, args[3], true)
		if err != nil {
			return c, err
		}
		c.LSN = l
		return c, nil
	case "timeline_list":
		c.Kind = KindTimelineList
		if len(args) != 1 {
			return c, syntaxError(c.Kind, "timeline_list takes exactly 1 argument, got %d", len(args))
		}
		if !auth.IsTenantID(args[0]) {
			return c, syntaxError(c.Kind, "tenant id %q is not 32 lowercase hexadecimal characters", truncate(args[0]))
		}
		c.TenantID = args[0]
		return c, nil
	case "identify_system":
		c.Kind = KindIdentifySystem
		switch len(args) {
		case 0:
			return c, nil
		case 2:
			return c, c.parseIDs(args[0], args[1])
		default:
			return c, syntaxError(c.Kind, "identify_system takes 0 or 2 arguments, got %d", len(args))
		}
	case "set":
		c.Kind = KindSet
		return c, nil
	default:
		return c, &wire.Error{Code: wire.CodeSyntaxError, Message: fmt.Sprintf("unsupported command %q", truncate(fields[0])),
			Hint: "commands: pagestream_v2, pagestream_v3, basebackup, fullbackup, tenant_list, tenant_create, branch_create, timeline_list, identify_system, set"}
	}
}

func (c *Command) parseIDs(tenant, timeline string) error {
	if !auth.IsTenantID(tenant) {
		return syntaxError(c.Kind, "tenant id %q is not 32 lowercase hexadecimal characters", truncate(tenant))
	}
	if !isTimelineID(timeline) {
		return syntaxError(c.Kind, "timeline id %q is not 32 lowercase hexadecimal characters", truncate(timeline))
	}
	c.TenantID, c.TimelineID = tenant, timeline
	return nil
}

func parseLSN(kind Kind, s string, allowLatest bool) (lsn.LSN, error) {
	if allowLatest && strings.EqualFold(s, "latest") {
		return 0, nil
	}
	l, err := lsn.Parse(s)
	if err != nil {
		return 0, syntaxError(kind, "invalid LSN %q (want X/Y hexadecimal, e.g. 0/16960E8)", truncate(s))
	}
	if l == 0 && !allowLatest {
		return 0, nil
	}
	return l, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// isTimelineID reports whether s is a timeline id in text form (design D6).
func isTimelineID(s string) bool {
	_, err := ids.ParseTimelineID(s)
	return err == nil
}
