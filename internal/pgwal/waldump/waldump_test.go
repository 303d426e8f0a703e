package waldump

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

func TestAppendRecordDescriptions(t *testing.T) {
	nextOID := &pgwal.DecodedRecord{RmID: rmgr.XLOG, Info: rmgr.InfoNextOID, MainData: []byte{0x00, 0x40, 0x00, 0x00}, TotalLen: 30}
	line := string(AppendRecord(nil, nextOID, false, false))
	require.Equal(t, "rmgr: XLOG        len (rec/tot):     30/    30, tx:          0, lsn: 0/00000000, prev 0/00000000, desc: NEXTOID 16384\n", line)

	compat := string(AppendRecord(nil, nextOID, true, false))
	require.NotContains(t, compat, "desc:")

	btree := &pgwal.DecodedRecord{RmID: rmgr.Btree, Info: 0x00, MainData: []byte{1, 2}}
	require.Contains(t, string(AppendRecord(nil, btree, false, false)), "desc: INSERT_LEAF info 0x00 main 2")

	broken := &pgwal.DecodedRecord{RmID: rmgr.XLOG, Info: rmgr.InfoNextOID, MainData: []byte{1}}
	got := string(AppendRecord(nil, broken, false, false))
	require.True(t, strings.Contains(got, "NEXTOID (undecodable: "), got)
}
