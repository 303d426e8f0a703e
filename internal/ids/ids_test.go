package ids

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	good := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, in, errPart string
	}{
		{"valid", good, ""},
		{"empty", "", "has 0 characters"},
		{"short", good[:31], "has 31 characters"},
		{"long", good + "0", "has 33 characters"},
		{"upper", strings.ToUpper(good), "not lowercase hexadecimal"},
		{"path traversal", "../../../../../../../../etc/pass", "not lowercase hexadecimal"},
		{"separator", "0123456789abcdef/123456789abcdef", "not lowercase hexadecimal"},
		{"non-hex", "0123456789abcdefg123456789abcdef", "not lowercase hexadecimal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tid, err1 := ParseTenantID(tt.in)
			lid, err2 := ParseTimelineID(tt.in)
			if tt.errPart == "" {
				require.NoError(t, err1)
				require.NoError(t, err2)
				require.Equal(t, tt.in, tid.String())
				require.Equal(t, tt.in, lid.String())
				return
			}
			require.ErrorIs(t, err1, ErrInvalid)
			require.ErrorContains(t, err1, tt.errPart)
			require.ErrorContains(t, err1, "tenant id")
			require.ErrorContains(t, err2, "timeline id")
			require.True(t, errors.Is(err2, ErrInvalid))
		})
	}
}

func TestNewIsRandomAndRoundTrips(t *testing.T) {
	seen := map[TenantID]bool{}
	for i := 0; i < 100; i++ {
		id := NewTenantID()
		require.False(t, id.IsZero())
		require.False(t, seen[id], "duplicate random id")
		seen[id] = true
		back, err := ParseTenantID(id.String())
		require.NoError(t, err)
		require.Equal(t, id, back)
	}
	tl := NewTimelineID()
	require.False(t, tl.IsZero())
	require.True(t, TimelineID{}.IsZero())
	require.True(t, TenantID{}.IsZero())
}

func TestJSON(t *testing.T) {
	type doc struct {
		Tenant   TenantID   `json:"tenant_id"`
		Timeline TimelineID `json:"timeline_id"`
	}
	in := doc{NewTenantID(), NewTimelineID()}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.Contains(t, string(b), in.Tenant.String())
	var out doc
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, in, out)
	require.ErrorIs(t, json.Unmarshal([]byte(`{"tenant_id":"xyz"}`), &out), ErrInvalid)
	require.ErrorIs(t, json.Unmarshal([]byte(`{"timeline_id":"xyz"}`), &out), ErrInvalid)
}

func FuzzParse(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef")
	f.Add("")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTenantID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("round trip %q -> %q", s, id.String())
		}
	})
}
