package session

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
	"github.com/stratadb/strata/services/pgproxy/wire"
)

const (
	tn = "0123456789abcdef0123456789abcdef"
	tl = "fedcba9876543210fedcba9876543210"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Command
	}{
		{"pagestream_v2 " + tn + " " + tl, Command{Kind: KindPagestream, Version: pagestream.V2, TenantID: tn, TimelineID: tl}},
		{"PAGESTREAM_V3  " + tn + "\t" + tl, Command{Kind: KindPagestream, Version: pagestream.V3, TenantID: tn, TimelineID: tl}},
		{"basebackup " + tn + " " + tl, Command{Kind: KindBasebackup, TenantID: tn, TimelineID: tl}},
		{"basebackup " + tn + " " + tl + " latest --gzip", Command{Kind: KindBasebackup, TenantID: tn, TimelineID: tl, Gzip: true}},
		{"basebackup " + tn + " " + tl + " --gzip 0/16960E8", Command{Kind: KindBasebackup, TenantID: tn, TimelineID: tl, Gzip: true, LSN: lsn.LSN(0x16960E8)}},
		{"fullbackup " + tn + " " + tl, Command{Kind: KindFullbackup, TenantID: tn, TimelineID: tl}},
		{"fullbackup " + tn + " " + tl + " 1/0 0/FFFFF0", Command{Kind: KindFullbackup, TenantID: tn, TimelineID: tl, LSN: 1 << 32, PrevLSN: 0xFFFFF0}},
		{"tenant_list", Command{Kind: KindTenantList}},
		{"tenant_create", Command{Kind: KindTenantCreate}},
		{"tenant_create " + tn, Command{Kind: KindTenantCreate, TenantID: tn}},
		{"branch_create " + tn + " auto " + tl + " 0/1", Command{Kind: KindBranchCreate, TenantID: tn, TimelineID: tl, LSN: 1}},
		{"branch_create " + tn + " " + tn + " " + tl + " latest", Command{Kind: KindBranchCreate, TenantID: tn, TimelineID: tl, NewTimelineID: tn}},
		{"timeline_list " + tn, Command{Kind: KindTimelineList, TenantID: tn}},
		{"identify_system", Command{Kind: KindIdentifySystem}},
		{"identify_system " + tn + " " + tl, Command{Kind: KindIdentifySystem, TenantID: tn, TimelineID: tl}},
		{"set datestyle to 'ISO'", Command{Kind: KindSet}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCommand(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		in, code, msg string
	}{
		{"", wire.CodeSyntaxError, "empty"},
		{"select 1", wire.CodeSyntaxError, "unsupported command"},
		{"pagestream_v1 " + tn + " " + tl, wire.CodeSyntaxError, "unsupported command"},
		{"pagestream_v3 " + tn, wire.CodeSyntaxError, "exactly 2"},
		{"pagestream_v3 " + tn + " " + tl + " x", wire.CodeSyntaxError, "exactly 2"},
		{"pagestream_v3 " + "0123456789ABCDEF0123456789ABCDEF " + tl, wire.CodeSyntaxError, "lowercase"},
		{"pagestream_v3 " + tn + " short", wire.CodeSyntaxError, "timeline id"},
		{"basebackup " + tn, wire.CodeSyntaxError, "at least 2"},
		{"basebackup " + tn + " " + tl + " --gzip --gzip", wire.CodeSyntaxError, "twice"},
		{"basebackup " + tn + " " + tl + " --zstd", wire.CodeSyntaxError, "unknown basebackup flag"},
		{"basebackup " + tn + " " + tl + " 0/1 0/2", wire.CodeSyntaxError, "at most one LSN"},
		{"basebackup " + tn + " " + tl + " --replica", wire.CodeFeatureNotSupported, "--replica"},
		{"basebackup " + tn + " " + tl + " zz", wire.CodeSyntaxError, "invalid LSN"},
		{"fullbackup " + tn + " " + tl + " 0/1 latest", wire.CodeSyntaxError, "invalid LSN"},
		{"fullbackup " + tn + " " + tl + " 0/1 0/1 0/1", wire.CodeSyntaxError, "2 to 4"},
		{"tenant_list x", wire.CodeSyntaxError, "no arguments"},
		{"tenant_create x", wire.CodeSyntaxError, "tenant id"},
		{"branch_create " + tn + " new " + tl + " 0/1", wire.CodeSyntaxError, "new timeline id"},
		{"branch_create " + tn + " auto " + tl, wire.CodeSyntaxError, "exactly 4"},
		{"timeline_list", wire.CodeSyntaxError, "exactly 1"},
		{"identify_system " + tn, wire.CodeSyntaxError, "0 or 2"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseCommand(tc.in)
			var we *wire.Error
			require.True(t, errors.As(err, &we), "error %v", err)
			require.Equal(t, tc.code, we.Code)
			require.Contains(t, we.Message, tc.msg)
		})
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"pagestream_v3 " + tn + " " + tl, "basebackup " + tn + " " + tl + " latest --gzip", "fullbackup " + tn + " " + tl + " 0/1 0/0",
		"branch_create " + tn + " auto " + tl + " 0/1", "tenant_create", "set x", "identify_system", "\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommand(s)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) {
				t.Fatalf("error is not a *wire.Error: %v", err)
			}
			if len(we.Message) > 400 {
				t.Fatalf("error message is unbounded: %d bytes", len(we.Message))
			}
			return
		}
		if c.Kind == "" {
			t.Fatal("accepted command without kind")
		}
	})
}
