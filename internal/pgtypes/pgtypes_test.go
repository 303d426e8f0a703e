package pgtypes

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

// initPage returns an empty page as PostgreSQL's PageInit leaves it with
// specialSize bytes of special space.
func initPage(specialSize uint16) []byte {
	page := make([]byte, BLCKSZ)
	le := binary.LittleEndian
	le.PutUint16(page[pdLowerOff:], PageHeaderSize)
	le.PutUint16(page[pdUpperOff:], BLCKSZ-specialSize)
	le.PutUint16(page[pdSpecialOff:], BLCKSZ-specialSize)
	le.PutUint16(page[pdPageSizeVersionOff:], PageSizeVersion)
	return page
}

func TestPageLSNLayout(t *testing.T) {
	page := make([]byte, BLCKSZ)
	l := lsn.MustParse("1/2")
	PageSetLSN(page, l)
	// pd_lsn is {xlogid, xrecoff}: the high half first, each little-endian.
	require.Equal(t, []byte{1, 0, 0, 0, 2, 0, 0, 0}, page[:8])
	require.Equal(t, l, PageGetLSN(page))

	for _, v := range []lsn.LSN{0, 1, lsn.MustParse("16/B374D848"), lsn.Max} {
		PageSetLSN(page, v)
		require.Equal(t, v, PageGetLSN(page))
	}
}

func TestPageIsNew(t *testing.T) {
	require.True(t, PageIsNew(make([]byte, BLCKSZ)))
	require.False(t, PageIsNew(initPage(0)))
}

func TestParsePageHeader(t *testing.T) {
	page := initPage(16)
	PageSetLSN(page, lsn.MustParse("0/16B3748"))
	le := binary.LittleEndian
	le.PutUint16(page[pdChecksumOff:], 0xBEEF)
	le.PutUint16(page[pdFlagsOff:], PageFlagAllVisible)
	le.PutUint32(page[pdPruneXidOff:], 742)

	h, err := ParsePageHeader(page)
	require.NoError(t, err)
	require.Equal(t, PageHeader{
		LSN:             lsn.MustParse("0/16B3748"),
		Checksum:        0xBEEF,
		Flags:           PageFlagAllVisible,
		Lower:           PageHeaderSize,
		Upper:           BLCKSZ - 16,
		Special:         BLCKSZ - 16,
		PageSizeVersion: 0x2004,
		PruneXid:        742,
	}, h)
	require.NoError(t, h.Validate())

	// Only the header is needed.
	_, err = ParsePageHeader(page[:PageHeaderSize])
	require.NoError(t, err)
	_, err = ParsePageHeader(page[:PageHeaderSize-1])
	require.ErrorContains(t, err, "shorter")
	_, err = ParsePageHeader(nil)
	require.Error(t, err)
}

func TestPageHeaderValidate(t *testing.T) {
	good := PageHeader{Lower: 24, Upper: 8000, Special: 8192, PageSizeVersion: PageSizeVersion}
	tests := []struct {
		name    string
		mutate  func(h *PageHeader)
		wantErr string
	}{
		{name: "valid", mutate: func(*PageHeader) {}},
		{name: "all valid flags", mutate: func(h *PageHeader) { h.Flags = PageFlagValidFlagBits }},
		{name: "full page", mutate: func(h *PageHeader) { h.Lower, h.Upper = 8000, 8000 }},
		{name: "unknown flag", mutate: func(h *PageHeader) { h.Flags = 0x8 }, wantErr: "flag"},
		{name: "lower inside header", mutate: func(h *PageHeader) { h.Lower = 23 }, wantErr: "out of order"},
		{name: "lower above upper", mutate: func(h *PageHeader) { h.Lower = 8001 }, wantErr: "out of order"},
		{name: "upper above special", mutate: func(h *PageHeader) { h.Special = 7999 }, wantErr: "out of order"},
		{name: "special beyond page", mutate: func(h *PageHeader) { h.Upper, h.Special = 8193, 8193 }, wantErr: "out of order"},
		{name: "wrong version", mutate: func(h *PageHeader) { h.PageSizeVersion = BLCKSZ | 3 }, wantErr: "size/version"},
		{name: "new page", mutate: func(h *PageHeader) { *h = PageHeader{} }, wantErr: "out of order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			tt.mutate(&h)
			err := h.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestForkNumber(t *testing.T) {
	tests := []struct {
		fork   ForkNumber
		name   string
		suffix string
		valid  bool
	}{
		{MainForkNum, "main", "", true},
		{FSMForkNum, "fsm", "_fsm", true},
		{VisibilityMapForkNum, "vm", "_vm", true},
		{InitForkNum, "init", "_init", true},
		{4, "fork4", "_fork4", false},
		{255, "fork255", "_fork255", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.name, tt.fork.String())
			require.Equal(t, tt.suffix, tt.fork.FileSuffix())
			require.Equal(t, tt.valid, tt.fork.Valid())
		})
	}
}

func TestRelTagPaths(t *testing.T) {
	tests := []struct {
		name   string
		tag    RelTag
		str    string
		path   string
		seg3   string
		bufTag string
	}{
		{
			name:   "default tablespace main",
			tag:    RelTag{SpcNode: DefaultTablespaceOid, DbNode: 5, RelNode: 16384, ForkNum: MainForkNum},
			str:    "1663/5/16384",
			path:   "base/5/16384",
			seg3:   "base/5/16384.3",
			bufTag: "1663/5/16384 blk 7",
		},
		{
			name:   "default tablespace fsm",
			tag:    RelTag{SpcNode: DefaultTablespaceOid, DbNode: 5, RelNode: 16384, ForkNum: FSMForkNum},
			str:    "1663/5/16384_fsm",
			path:   "base/5/16384_fsm",
			seg3:   "base/5/16384_fsm.3",
			bufTag: "1663/5/16384_fsm blk 7",
		},
		{
			name:   "global vm",
			tag:    RelTag{SpcNode: GlobalTablespaceOid, DbNode: 0, RelNode: 1262, ForkNum: VisibilityMapForkNum},
			str:    "1664/0/1262_vm",
			path:   "global/1262_vm",
			seg3:   "global/1262_vm.3",
			bufTag: "1664/0/1262_vm blk 7",
		},
		{
			name:   "user tablespace init",
			tag:    RelTag{SpcNode: 16390, DbNode: 16385, RelNode: 16400, ForkNum: InitForkNum},
			str:    "16390/16385/16400_init",
			path:   "pg_tblspc/16390/PG_15_202209061/16385/16400_init",
			seg3:   "pg_tblspc/16390/PG_15_202209061/16385/16400_init.3",
			bufTag: "16390/16385/16400_init blk 7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.str, tt.tag.String())
			require.Equal(t, tt.path, tt.tag.Path())
			require.Equal(t, tt.path, tt.tag.SegmentPath(0))
			require.Equal(t, tt.seg3, tt.tag.SegmentPath(3))
			require.Equal(t, tt.bufTag, BufferTag{Rel: tt.tag, BlockNum: 7}.String())

			node := tt.tag.Node()
			require.Equal(t, RelFileNode{SpcNode: tt.tag.SpcNode, DbNode: tt.tag.DbNode, RelNode: tt.tag.RelNode}, node)
			require.Equal(t, tt.tag, node.Tag(tt.tag.ForkNum))
		})
	}
}

func FuzzParsePageHeader(f *testing.F) {
	f.Add(initPage(0)[:PageHeaderSize])
	f.Add(initPage(16))
	f.Add(make([]byte, 10))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, page []byte) {
		h, err := ParsePageHeader(page)
		if err != nil {
			require.Less(t, len(page), PageHeaderSize)
			return
		}
		_ = h.Validate() // must not panic
		require.Equal(t, PageGetLSN(page), h.LSN)
		require.Equal(t, PageIsNew(page), h.Upper == 0)
	})
}
