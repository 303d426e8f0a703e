package timelines

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/lsn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testTenant   = "0123456789abcdef0123456789abcdef"
	testTimeline = "fedcba9876543210fedcba9876543210"
	conninfo     = "host=127.0.0.1 port=1 user=u password=s3cret"
)

func TestLagTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		primaryFlush, lastRecord lsn.LSN
		now                      int // ms
		want                     time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"caught up is zero", []step{{100, 100, 0, 0}, {200, 200, 100, 0}}},
		{"age of oldest missing WAL", []step{{100, 50, 0, 0}, {200, 50, 100, 100 * time.Millisecond}, {300, 50, 500, 500 * time.Millisecond}}},
		{"partial catch-up moves to the next sample", []step{{100, 50, 0, 0}, {200, 50, 100, 100 * time.Millisecond}, {200, 150, 300, 200 * time.Millisecond}, {200, 200, 400, 0}}},
		{"pageserver ahead of the primary's report", []step{{100, 200, 0, 0}, {100, 200, 1000, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l lagTracker
			for i, s := range tc.steps {
				l.observe(s.primaryFlush, s.lastRecord, at(s.now))
				require.Equal(t, s.want, l.lag(s.lastRecord, at(s.now)), "step %d", i)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		var l lagTracker
		for i := range 3 * maxLagSamples {
			l.observe(lsn.LSN(100+i), 1, at(i))
		}
		require.Len(t, l.samples, maxLagSamples)
		// The oldest sample keeps its time: the lag is never understated.
		require.Equal(t, time.Duration(3*maxLagSamples-1)*time.Millisecond, l.lag(1, at(3*maxLagSamples-1)))
		// Past the merged sample's LSN everything is caught up.
		l.observe(lsn.LSN(100+3*maxLagSamples-1), lsn.LSN(100+3*maxLagSamples-1), at(3*maxLagSamples))
		require.Zero(t, l.lag(lsn.LSN(100+3*maxLagSamples-1), at(3*maxLagSamples)))
	})
}

func TestAttachmentValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Attachment
		want string // substring of the error; "" = valid
	}{
		{"ok", Attachment{TenantID: testTenant, TimelineID: testTimeline, PrimaryConnInfo: conninfo}, ""},
		{"import generates an id", Attachment{TenantID: testTenant, PrimaryConnInfo: conninfo, Import: true}, ""},
		{"no testTimeline without import", Attachment{TenantID: testTenant, PrimaryConnInfo: conninfo}, "timeline_id"},
		{"bad testTenant", Attachment{TenantID: "x", TimelineID: testTimeline, PrimaryConnInfo: conninfo}, "tenant_id"},
		{"bad slot", Attachment{TenantID: testTenant, TimelineID: testTimeline, SlotName: "Bad-Slot", PrimaryConnInfo: conninfo}, "slot_name"},
		{"no conninfo", Attachment{TenantID: testTenant, TimelineID: testTimeline}, "primary_conninfo is empty"},
		{"bad conninfo is not echoed", Attachment{TenantID: testTenant, TimelineID: testTimeline, PrimaryConnInfo: "host='unterminated password=s3cret"}, "cannot be parsed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			err := a.normalize()
			if tc.want == "" {
				require.NoError(t, err)
				require.Len(t, a.TimelineID, 32)
				require.Equal(t, "strata_"+a.TimelineID[:16], a.SlotName)
				return
			}
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func newTestManager(t *testing.T, dir string, configured ...Attachment) *Manager {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	m, err := New(Options{StateDir: dir, Pageserver: conn}, configured)
	require.NoError(t, err)
	return m
}

// TestPersistence attaches and detaches without running (no primary
// needed) and checks the attachments file across managers.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfgTimeline := "11111111111111111111111111111111"
	configured := Attachment{TenantID: testTenant, TimelineID: cfgTimeline, PrimaryConnInfo: "host=cfg"}

	m := newTestManager(t, dir, configured)
	st, err := m.Attach(ctx, Attachment{TenantID: testTenant, TimelineID: testTimeline, PrimaryConnInfo: conninfo})
	require.NoError(t, err)
	require.Equal(t, StateStopped, st.State)
	_, err = m.Attach(ctx, Attachment{TenantID: testTenant, TimelineID: testTimeline, PrimaryConnInfo: conninfo})
	require.ErrorIs(t, err, ErrAlreadyAttached)
	_, err = m.Attach(ctx, Attachment{TenantID: testTenant, TimelineID: cfgTimeline, PrimaryConnInfo: conninfo})
	require.ErrorIs(t, err, ErrAlreadyAttached)
	imp, err := m.Attach(ctx, Attachment{TenantID: testTenant, PrimaryConnInfo: conninfo, Import: true, SlotName: "my_slot"})
	require.NoError(t, err)
	require.Equal(t, "my_slot", imp.SlotName)
	require.ErrorIs(t, m.Detach(ctx, testTenant, cfgTimeline, false), ErrConfigured)
	m.Close()

	info, err := os.Stat(filepath.Join(dir, stateFileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the file holds connection strings")
	data, err := os.ReadFile(filepath.Join(dir, stateFileName))
	require.NoError(t, err)
	require.Contains(t, string(data), conninfo)
	require.NotContains(t, string(data), "host=cfg", "configured timelines are not persisted")

	m = newTestManager(t, dir, configured)
	list := m.List()
	require.Len(t, list, 3)
	byID := map[string]Status{}
	for _, s := range list {
		byID[s.TimelineID] = s
		require.Equal(t, StateStopped, s.State)
	}
	require.True(t, byID[cfgTimeline].FromConfig)
	require.True(t, byID[imp.TimelineID].Import)
	require.False(t, byID[imp.TimelineID].Imported)
	require.NoError(t, m.Detach(ctx, testTenant, testTimeline, false))
	require.ErrorIs(t, m.Detach(ctx, testTenant, testTimeline, false), ErrNotAttached)
	_, err = m.Get(testTenant, testTimeline)
	require.ErrorIs(t, err, ErrNotAttached)
	require.NoDirExists(t, filepath.Join(dir, testTenant, testTimeline))
	m.Close()

	m = newTestManager(t, dir)
	list = m.List()
	require.Len(t, list, 1)
	require.Equal(t, imp.TimelineID, list[0].TimelineID)
	m.Close()
}

func TestBadStateFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":         "{",
		"version":          `{"version": 2, "timelines": []}`,
		"bad testTimeline": `{"version": 1, "timelines": [{"tenant_id": "x"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, stateFileName), []byte(content), 0o600))
			conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			_, err = New(Options{StateDir: dir, Pageserver: conn}, nil)
			require.ErrorIs(t, err, ErrState)
			require.True(t, strings.Contains(err.Error(), stateFileName))
		})
	}
}
