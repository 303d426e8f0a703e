package basebackup

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

// WAL constants for the synthesized segment (pg15-formats.md §1.2, §2.1).
const (
	xlogPageMagic    = 0xD110
	xlpLongHeader    = 0x0002
	recordHeaderSize = 24
	// checkpointRecordSize is the only xl_tot_len PostgreSQL accepts for a
	// checkpoint record: header + short main-data header (2) + CheckPoint.
	checkpointRecordSize = recordHeaderSize + 2 + rmgr.CheckPointSize
	// blockIDDataShort is XLR_BLOCK_ID_DATA_SHORT.
	blockIDDataShort = 255
)

// CheckpointLocation returns where the synthesized shutdown checkpoint of a
// backup at backupLSN goes (design D11): just after the long page header of
// the first segment that starts after backupLSN. Like pg_resetwal, which
// moves to the segment after the last one in use, this never shares a
// segment with WAL that existed at backupLSN, so whatever PostgreSQL writes
// after booting cannot be confused with the timeline's own WAL.
func CheckpointLocation(backupLSN lsn.LSN, segSize uint64) lsn.LSN {
	segno := backupLSN.SegmentNumber(segSize) + 1
	return lsn.LSN(segno*segSize + lsn.LongPageHeaderSize)
}

// EncodeCheckpointRecord returns the 114-byte XLOG CHECKPOINT_SHUTDOWN
// record carrying cp, with its CRC. xl_prev is 0, as pg_resetwal writes it:
// the record is the first in its segment and no earlier record exists in the
// booted cluster's WAL; a server reading its checkpoint record by random
// access only checks prev < LSN (pg15-formats.md §5.4).
func EncodeCheckpointRecord(cp rmgr.CheckPoint) []byte {
	rec := make([]byte, checkpointRecordSize)
	le := binary.LittleEndian
	le.PutUint32(rec[0:], checkpointRecordSize) // xl_tot_len
	le.PutUint32(rec[4:], 0)                    // xl_xid
	le.PutUint64(rec[8:], 0)                    // xl_prev
	rec[16] = rmgr.InfoCheckpointShutdown       // xl_info
	rec[17] = byte(rmgr.XLOG)                   // xl_rmid
	rec[recordHeaderSize] = blockIDDataShort
	rec[recordHeaderSize+1] = rmgr.CheckPointSize
	copy(rec[recordHeaderSize+2:], cp.Encode())
	// xl_crc covers the record after the header, then the header up to xl_crc.
	crc := crc32.Update(0, castagnoli, rec[recordHeaderSize:])
	crc = crc32.Update(crc, castagnoli, rec[:20])
	le.PutUint32(rec[20:], crc)
	return rec
}

// WALSegmentFirstPage returns the first 8192-byte page of the synthesized
// segment: a long page header (xlp_info = XLP_LONG_HEADER only, as
// pg_resetwal writes it) for the segment holding checkpointLSN, followed by
// the checkpoint record at checkpointLSN, zeros after. checkpointLSN must be
// the first record position of a segment (CheckpointLocation).
func WALSegmentFirstPage(systemID uint64, segSize uint64, cp rmgr.CheckPoint, checkpointLSN lsn.LSN) ([]byte, error) {
	if checkpointLSN.SegmentOffset(segSize) != lsn.LongPageHeaderSize {
		return nil, fmt.Errorf("%w: checkpoint location %s is not the first record of a segment", ErrInvalidCheckpoint, checkpointLSN)
	}
	page := make([]byte, lsn.WALPageSize)
	le := binary.LittleEndian
	le.PutUint16(page[0:], xlogPageMagic)
	le.PutUint16(page[2:], xlpLongHeader)
	le.PutUint32(page[4:], cp.ThisTimeLineID)
	le.PutUint64(page[8:], uint64(checkpointLSN.SegmentStart(segSize)))
	// xlp_rem_len and padding stay zero.
	le.PutUint64(page[24:], systemID)
	le.PutUint32(page[32:], uint32(segSize))
	le.PutUint32(page[36:], lsn.WALPageSize)
	copy(page[lsn.LongPageHeaderSize:], EncodeCheckpointRecord(cp))
	return page, nil
}

// writeZeros writes n zero bytes in page-sized writes, checking ctx between
// them so a cancelled backup stops promptly.
func writeZeros(ctx context.Context, w io.Writer, n uint64) error {
	var zero [pgtypes.BLCKSZ]byte
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, uint64(len(zero)))
		if _, err := w.Write(zero[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// WriteWALSegment writes the whole synthesized segment (segSize bytes: the
// first page of WALSegmentFirstPage, then zeros) to w. Zeros after the
// checkpoint are what PostgreSQL itself leaves in a fresh segment, and they
// end the WAL right after the checkpoint, as startup requires.
func WriteWALSegment(ctx context.Context, w io.Writer, systemID uint64, segSize uint64, cp rmgr.CheckPoint, checkpointLSN lsn.LSN) error {
	page, err := WALSegmentFirstPage(systemID, segSize, cp, checkpointLSN)
	if err != nil {
		return err
	}
	if _, err := w.Write(page); err != nil {
		return err
	}
	return writeZeros(ctx, w, segSize-uint64(len(page)))
}

// WALFileName returns the name under pg_wal of the segment holding
// checkpointLSN on timeline tli.
func WALFileName(tli uint32, checkpointLSN lsn.LSN, segSize uint64) string {
	return lsn.WALFileName(tli, checkpointLSN.SegmentNumber(segSize), segSize)
}
