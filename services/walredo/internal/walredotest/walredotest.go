// Package walredotest builds the strata_walredo extension and a template
// for tests of services/walredo, and crafts WAL records by hand for tests
// that need precise control (bad CRCs, PANICs).
package walredotest

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/pgext"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

// Setup builds the extension into a fresh directory and prepares (or
// reuses) the machine-wide test template. It returns a process.Config ready
// for process.PrepareTemplate and a cleanup func. Missing server headers make
// it fail with a message saying to run make deps.
func Setup(ctx context.Context, log *slog.Logger) (process.Config, func(), error) {
	_, file, _, _ := runtime.Caller(0)
	srcDir := filepath.Join(filepath.Dir(file), "..", "..", "pgext")
	buildDir, err := os.MkdirTemp("", "strata-walredo-build-")
	if err != nil {
		return process.Config{}, nil, err
	}
	cleanup := func() { os.RemoveAll(buildDir) }
	lib, err := pgext.Build(ctx, srcDir, buildDir, "")
	if err != nil {
		cleanup()
		return process.Config{}, nil, fmt.Errorf("walredotest: %w (run make deps)", err)
	}
	// Shared by all test binaries of this user, so the template (seconds to
	// make) is prepared once per machine and build id.
	workDir := filepath.Join(os.TempDir(), "strata-walredo-test-"+strconv.Itoa(os.Geteuid()))
	cfg := process.Config{ExtensionPath: lib, WorkDir: workDir, Logger: log}
	return cfg, cleanup, nil
}

// Record assembly (PostgreSQL 15 xlogrecord.h).
const (
	xlogRecordSize   = 24
	bkpHasImage      = 0x10
	bkpHasData       = 0x20
	bkpWillInit      = 0x40
	blockIDDataShort = 255
	blockIDDataLong  = 254
)

// Block is one block reference of a crafted record (no images).
type Block struct {
	Tag      pgtypes.BufferTag
	WillInit bool
	Data     []byte
}

// BuildRecord assembles a WAL record with a correct CRC.
func BuildRecord(rmid uint8, info uint8, xid uint32, blocks []Block, mainData []byte) []byte {
	var body []byte
	le := binary.LittleEndian
	for i, b := range blocks {
		flags := byte(b.Tag.Rel.ForkNum)
		if len(b.Data) > 0 {
			flags |= bkpHasData
		}
		if b.WillInit {
			flags |= bkpWillInit
		}
		body = append(body, byte(i), flags)
		body = le.AppendUint16(body, uint16(len(b.Data)))
		body = le.AppendUint32(body, uint32(b.Tag.Rel.SpcNode))
		body = le.AppendUint32(body, uint32(b.Tag.Rel.DbNode))
		body = le.AppendUint32(body, uint32(b.Tag.Rel.RelNode))
		body = le.AppendUint32(body, b.Tag.BlockNum)
	}
	if len(mainData) > 0 {
		if len(mainData) < 256 {
			body = append(body, blockIDDataShort, byte(len(mainData)))
		} else {
			body = append(body, blockIDDataLong)
			body = le.AppendUint32(body, uint32(len(mainData)))
		}
	}
	for _, b := range blocks {
		body = append(body, b.Data...)
	}
	body = append(body, mainData...)

	rec := make([]byte, xlogRecordSize, xlogRecordSize+len(body))
	le.PutUint32(rec[0:], uint32(xlogRecordSize+len(body)))
	le.PutUint32(rec[4:], xid)
	// xl_prev (8 bytes) stays zero: redo does not look at it.
	rec[16] = info
	rec[17] = rmid
	rec = append(rec, body...)
	FixCRC(rec)
	return rec
}

// FixCRC recomputes xl_crc as ValidXLogRecord checks it.
func FixCRC(rec []byte) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	crc := crc32.Checksum(rec[xlogRecordSize:], tab)
	crc = crc32.Update(crc, tab, rec[:20])
	binary.LittleEndian.PutUint32(rec[20:], crc)
}

// Heap record constants (heapam_xlog.h).
const (
	rmHeap         = 10
	heapInsert     = 0x00
	heapInitPage   = 0x80
	heapInfomaskXI = 0x0800 // HEAP_XMAX_INVALID
)

// HeapInsert crafts a Heap/INSERT of a one-int4-column tuple at offnum of
// tag's page (initialising the page when init is set).
func HeapInsert(tag pgtypes.BufferTag, offnum uint16, value int32, init bool, xid uint32) []byte {
	le := binary.LittleEndian
	main := le.AppendUint16(nil, offnum)
	main = append(main, 0) // flags
	// xl_heap_header: t_infomask2 (natts), t_infomask, t_hoff; then the
	// tuple from t_bits on: one pad byte to t_hoff=24, then the value.
	data := le.AppendUint16(nil, 1)
	data = le.AppendUint16(data, heapInfomaskXI)
	data = append(data, 24, 0)
	data = le.AppendUint32(data, uint32(value))
	info := uint8(heapInsert)
	if init {
		info |= heapInitPage
	}
	return BuildRecord(rmHeap, info, xid, []Block{{Tag: tag, WillInit: init, Data: data}}, main)
}

// Chain gives records consecutive, 8-aligned LSNs starting at start.
func Chain(start lsn.LSN, raws ...[]byte) []redo.Record {
	out := make([]redo.Record, len(raws))
	at := start
	for i, raw := range raws {
		end := at.Add(uint64(len(raw))).Align()
		out[i] = redo.Record{Start: at, End: end, Raw: raw}
		at = end
	}
	return out
}

// Btree constants (nbtxlog.h, nbtree.h).
const (
	rmBtree             = 11
	btreeInsertLeaf     = 0x00
	btpLeaf             = 1 << 0
	btPageOpaqueSize    = 16
	pageHeaderSize      = 24
	pageLayoutVersion   = 4
	indexTupleHeaderLen = 8 // ItemPointerData + t_info
)

// BtreeLeafPage returns an empty rightmost btree leaf page (no high key,
// so data items start at offset 1) stamped with at, as _bt_pageinit
// leaves it: the base image for BtreeInsertLeaf records.
func BtreeLeafPage(at lsn.LSN) []byte {
	le := binary.LittleEndian
	page := make([]byte, pgtypes.BLCKSZ)
	pgtypes.PageSetLSN(page, at)
	special := pgtypes.BLCKSZ - btPageOpaqueSize
	le.PutUint16(page[12:], pageHeaderSize)                           // pd_lower
	le.PutUint16(page[14:], uint16(special))                          // pd_upper
	le.PutUint16(page[16:], uint16(special))                          // pd_special
	le.PutUint16(page[18:], uint16(pgtypes.BLCKSZ)|pageLayoutVersion) // pd_pagesize_version
	// BTPageOpaqueData: btpo_prev, btpo_next, btpo_level (uint32 each),
	// btpo_flags, btpo_cycleid (uint16 each).
	le.PutUint16(page[special+12:], btpLeaf)
	return page
}

// BtreeInsertLeaf crafts a Btree/INSERT_LEAF of a one-int4-key index tuple
// pointing at heap TID (heapBlock, heapOff), placed at offnum of tag's
// leaf page. Records with increasing keys at offnum 1, 2, ... build a
// sorted leaf on BtreeLeafPage.
func BtreeInsertLeaf(tag pgtypes.BufferTag, offnum uint16, key int32, heapBlock uint32, heapOff uint16) []byte {
	le := binary.LittleEndian
	// IndexTupleData: t_tid (bi_hi, bi_lo, ip_posid) and t_info (size in
	// the low 13 bits), then the key MAXALIGNed to a 16-byte tuple.
	tuple := le.AppendUint16(nil, uint16(heapBlock>>16))
	tuple = le.AppendUint16(tuple, uint16(heapBlock))
	tuple = le.AppendUint16(tuple, heapOff)
	tuple = le.AppendUint16(tuple, indexTupleHeaderLen+8)
	tuple = le.AppendUint32(tuple, uint32(key))
	tuple = append(tuple, 0, 0, 0, 0)
	main := le.AppendUint16(nil, offnum) // xl_btree_insert
	return BuildRecord(rmBtree, btreeInsertLeaf, 0, []Block{{Tag: tag, Data: tuple}}, main)
}
