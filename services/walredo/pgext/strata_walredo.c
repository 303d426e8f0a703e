//go:build ignore

// (The line above keeps the go command from treating this C file as cgo
// source of package pgext, which embeds it to compute the build id.)

/*
 * strata_walredo: rebuild single pages from WAL inside an unmodified
 * PostgreSQL 15 running in single-user mode.
 *
 * The Go side (services/walredo/process) starts
 *     postgres --single -D <copy of template> ... postgres
 * writes "SELECT strata_walredo_main();\n" to its stdin, and from then on
 * this function owns stdin and stdout: it writes a handshake, then serves
 * length-framed binary requests until EOF. The byte layout is documented in
 * services/walredo/process/protocol.go, the other end of the pipe.
 *
 * How one page is rebuilt without a patched server (recipe and pitfalls in
 * shared/reference/walredo-feasibility.md):
 *  - every block reference of a record is remapped into a private database:
 *    the exact requested block goes to relation TARGET_REL, every other block
 *    to OTHER_REL (fork and block number kept), and OTHER_REL's buffers are
 *    dropped after each record, so non-target pages never carry state from
 *    one record to the next and never touch the child's own catalogs;
 *  - both relations' forks are sparse files presized to whole 1 GB segments,
 *    so redo never extends a file page by page and reads of blocks it does
 *    not have find zero pages (BLK_NOTFOUND);
 *  - the relations are created under wal_level=minimal inside the
 *    never-ending transaction, so hint-bit dirtying writes no scratch WAL;
 *  - the template was pg_resetwal'ed to a huge LSN, so writing out a page
 *    stamped with a real LSN never fails the XLogFlush check;
 *  - each request runs in a subtransaction: an ERROR is answered with an
 *    error reply and the child keeps serving; a PANIC (or an ERROR inside a
 *    critical section) kills the child, and the Go pool respawns it.
 *
 * Inputs are trusted (they come from our own pageserver), but every length
 * is checked before use so a malformed request yields an error reply rather
 * than a wild read.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/brin_xlog.h"
#include "access/heapam_xlog.h"
#include "access/rmgr.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "access/xlogutils.h"
#include "catalog/pg_class.h"
#include "catalog/pg_control.h"
#include "catalog/pg_tablespace_d.h"
#include "catalog/storage.h"
#include "common/relpath.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/fd.h"
#include "storage/smgr.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PG_MODULE_MAGIC;

#ifndef STRATA_WALREDO_BUILD_ID
#error "STRATA_WALREDO_BUILD_ID must be defined by the Makefile"
#endif

/* Protocol constants; keep in sync with services/walredo/process/protocol.go. */
#define SW_MAGIC			"STRWREDO"
#define SW_MAGIC_LEN		8
#define SW_PROTOCOL_VERSION 1
#define SW_HEADER_LEN		9	/* u8 type, u32 request id, u32 payload length */

#define SW_REQ_APPLY		'A'
#define SW_REQ_MASK			'M'
#define SW_REQ_PING			'H'
#define SW_REQ_SLEEP		'S'

#define SW_REPLY_PAGE		'P'
#define SW_REPLY_PONG		'H'
#define SW_REPLY_DONE		'D'
#define SW_REPLY_ERROR		'E'

#define SW_APPLY_HAS_BASE	0x1
#define SW_APPLY_HDR_LEN	28	/* spc, db, rel, fork, blkno, flags, nrecs */
#define SW_RECORD_HDR_LEN	20	/* u64 start, u64 end, u32 len */
#define SW_MAX_SLEEP_MS		600000

/* The private database and relations that all block references go to. */
#define SW_DB_OID			999999
#define SW_TARGET_REL		1
#define SW_OTHER_REL		2
#define SW_NRELS			2

PG_FUNCTION_INFO_V1(strata_walredo_main);

static XLogReaderState *reader;
static RelFileNode fake_rnode[SW_NRELS];
/* Number of whole 1 GB segments presized, per fake relation and fork. */
static BlockNumber presized_segs[SW_NRELS][MAX_FORKNUM + 1];
static MemoryContext request_cxt;

/* Scratch buffers reused across records (allocated in TopMemoryContext). */
static char *record_buf;
static Size record_buf_len;
static char *decode_buf;
static Size decode_buf_len;
static PGAlignedBlock result_page;

/* What the error context callback reports; reset per request. */
static uint32 current_reqid;
static XLogRecPtr current_lsn;

static uint32
get_u32(const char *p)
{
	const unsigned char *b = (const unsigned char *) p;

	return (uint32) b[0] | ((uint32) b[1] << 8) | ((uint32) b[2] << 16) | ((uint32) b[3] << 24);
}

static uint64
get_u64(const char *p)
{
	return (uint64) get_u32(p) | ((uint64) get_u32(p + 4) << 32);
}

static void
put_u32(char *p, uint32 v)
{
	p[0] = (char) (v & 0xff);
	p[1] = (char) ((v >> 8) & 0xff);
	p[2] = (char) ((v >> 16) & 0xff);
	p[3] = (char) ((v >> 24) & 0xff);
}

static void
put_u64(char *p, uint64 v)
{
	put_u32(p, (uint32) v);
	put_u32(p + 4, (uint32) (v >> 32));
}

/*
 * Stdout carries only our frames once the function runs. A failed write
 * means the Go side is gone; there is nobody left to answer, so exit.
 */
static void
write_all(const char *data, size_t len)
{
	if (len > 0 && fwrite(data, 1, len, stdout) != len)
		ereport(FATAL, (errmsg("strata_walredo: write to stdout failed: %m")));
}

static void
send_reply(char type, uint32 reqid, const char *payload, uint32 len)
{
	char		hdr[SW_HEADER_LEN];

	hdr[0] = type;
	put_u32(hdr + 1, reqid);
	put_u32(hdr + 5, len);
	write_all(hdr, SW_HEADER_LEN);
	write_all(payload, len);
	if (fflush(stdout) != 0)
		ereport(FATAL, (errmsg("strata_walredo: flush of stdout failed: %m")));
}

static void
send_error(uint32 reqid, XLogRecPtr lsn, const char *msg)
{
	size_t		msglen = strlen(msg);
	char	   *payload;

	if (msglen > 4096)
		msglen = 4096;
	payload = palloc(8 + msglen);
	put_u64(payload, lsn);
	memcpy(payload + 8, msg, msglen);
	send_reply(SW_REPLY_ERROR, reqid, payload, (uint32) (8 + msglen));
	pfree(payload);
}

/*
 * Read exactly len bytes. Returns false on EOF before the first byte when
 * eof_ok; a stream that ends mid-frame is a protocol violation.
 *
 * fread, not read(0): the single-user loop reads its query with stdio, so
 * bytes of our first frame may already sit in stdin's FILE buffer.
 */
static bool
read_exact(char *buf, size_t len, bool eof_ok)
{
	size_t		got = fread(buf, 1, len, stdin);

	if (got == len)
		return true;
	if (got == 0 && eof_ok && feof(stdin))
		return false;
	ereport(FATAL,
			(errmsg("strata_walredo: stdin ended after %zu of %zu bytes of a frame", got, len)));
	return false;				/* not reached */
}

static void
error_context_cb(void *arg)
{
	if (current_lsn != InvalidXLogRecPtr)
		errcontext("strata_walredo: request %u applying record at %X/%X",
				   current_reqid, LSN_FORMAT_ARGS(current_lsn));
}

/*
 * Make sure segments 0..seg of the fork exist at full size, so mdnblocks
 * reports the block as inside the relation. Files are sparse: ftruncate
 * allocates nothing.
 */
static void
ensure_presized(int which, ForkNumber fork, BlockNumber blkno)
{
	BlockNumber seg = blkno / RELSEG_SIZE;
	char	   *path;

	if (seg < presized_segs[which][fork])
		return;
	path = relpathperm(fake_rnode[which], fork);
	for (BlockNumber s = presized_segs[which][fork]; s <= seg; s++)
	{
		char	   *segpath = s == 0 ? pstrdup(path) : psprintf("%s.%u", path, s);
		int			fd = OpenTransientFile(segpath, O_RDWR | O_CREAT | PG_BINARY);

		if (fd < 0)
			ereport(ERROR, (errcode_for_file_access(),
							errmsg("strata_walredo: could not open \"%s\": %m", segpath)));
		if (ftruncate(fd, (off_t) RELSEG_SIZE * BLCKSZ) != 0)
		{
			int			save_errno = errno;

			CloseTransientFile(fd);
			errno = save_errno;
			ereport(ERROR, (errcode_for_file_access(),
							errmsg("strata_walredo: could not presize \"%s\": %m", segpath)));
		}
		CloseTransientFile(fd);
		pfree(segpath);
		presized_segs[which][fork] = s + 1;
	}
	pfree(path);
	/* smgrnblocks caches sizes while InRecovery; forget them after growing. */
	smgropen(fake_rnode[which], InvalidBackendId)->smgr_cached_nblocks[fork] = InvalidBlockNumber;
}

static void
create_private_relations(void)
{
	char	   *dbpath = GetDatabasePath(SW_DB_OID, DEFAULTTABLESPACE_OID);

	struct stat st;

	/* A fresh copy of the template has no such directory; be safe anyway. */
	if (stat(dbpath, &st) == 0)
		(void) rmtree(dbpath, true);
	if (MakePGDirectory(dbpath) != 0 && errno != EEXIST)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("strata_walredo: could not create \"%s\": %m", dbpath)));

	for (int i = 0; i < SW_NRELS; i++)
	{
		SMgrRelation srel;

		fake_rnode[i].spcNode = DEFAULTTABLESPACE_OID;
		fake_rnode[i].dbNode = SW_DB_OID;
		fake_rnode[i].relNode = i == 0 ? SW_TARGET_REL : SW_OTHER_REL;

		/*
		 * Under wal_level=minimal this registers a pending sync in the
		 * never-ending transaction, making RelFileNodeSkippingWAL() true, so
		 * MarkBufferDirtyHint on these pages emits no FPI_FOR_HINT.
		 */
		srel = RelationCreateStorage(fake_rnode[i], RELPERSISTENCE_PERMANENT, false);
		for (ForkNumber f = MAIN_FORKNUM + 1; f <= MAX_FORKNUM; f++)
			smgrcreate(srel, f, false);
		for (ForkNumber f = MAIN_FORKNUM; f <= MAX_FORKNUM; f++)
		{
			presized_segs[i][f] = 0;
			ensure_presized(i, f, 0);
		}
	}
}

/* Forget every page of both private relations, dirty or not. */
static void
drop_private_buffers(int first, int count)
{
	SMgrRelation srels[SW_NRELS];

	for (int i = 0; i < count; i++)
		srels[i] = smgropen(fake_rnode[first + i], InvalidBackendId);
	DropRelFileNodesAllBuffers(srels, count);
}

/*
 * Only records whose effects are confined to the pages they reference may
 * run here: anything that touches files, shared state or SLRUs (database
 * creation, truncation, commits, checkpoints, logical rewrite mappings)
 * would act on the child's own cluster.
 */
static bool
record_is_page_local(RmgrId rmid, uint8 info)
{
	switch (rmid)
	{
		case RM_XLOG_ID:
			info &= ~XLR_INFO_MASK;
			return info == XLOG_FPI || info == XLOG_FPI_FOR_HINT;
		case RM_HEAP2_ID:
			return (info & XLOG_HEAP_OPMASK) != XLOG_HEAP2_REWRITE;
		case RM_HEAP_ID:
		case RM_BTREE_ID:
		case RM_HASH_ID:
		case RM_GIN_ID:
		case RM_GIST_ID:
		case RM_SEQ_ID:
		case RM_SPGIST_ID:
		case RM_BRIN_ID:
		case RM_GENERIC_ID:
			return true;
		default:
			return false;
	}
}

/* Copy the record to an aligned buffer and check it as ValidXLogRecord does. */
static XLogRecord *
check_record(const char *raw, uint32 len, XLogRecPtr start, XLogRecPtr end)
{
	XLogRecord *rec;
	pg_crc32c	crc;

	if (len < SizeOfXLogRecord)
		ereport(ERROR, (errmsg("strata_walredo: record at %X/%X is %u bytes, shorter than its header",
							   LSN_FORMAT_ARGS(start), len)));
	if (end <= start)
		ereport(ERROR, (errmsg("strata_walredo: record at %X/%X has end LSN %X/%X not after its start",
							   LSN_FORMAT_ARGS(start), LSN_FORMAT_ARGS(end))));
	if (len > record_buf_len)
	{
		Size		newlen = Max(len, record_buf_len * 2);

		record_buf = repalloc_huge(record_buf, newlen);
		record_buf_len = newlen;
	}
	memcpy(record_buf, raw, len);
	rec = (XLogRecord *) record_buf;
	if (rec->xl_tot_len != len)
		ereport(ERROR, (errmsg("strata_walredo: record at %X/%X says xl_tot_len %u but %u bytes were sent",
							   LSN_FORMAT_ARGS(start), rec->xl_tot_len, len)));
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, ((char *) rec) + SizeOfXLogRecord, len - SizeOfXLogRecord);
	COMP_CRC32C(crc, (char *) rec, offsetof(XLogRecord, xl_crc));
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(rec->xl_crc, crc))
		ereport(ERROR, (errmsg("strata_walredo: record at %X/%X has incorrect CRC",
							   LSN_FORMAT_ARGS(start))));
	if (!RmgrIdExists(rec->xl_rmid) || GetRmgr(rec->xl_rmid).rm_redo == NULL)
		ereport(ERROR, (errmsg("strata_walredo: record at %X/%X has unknown resource manager %u",
							   LSN_FORMAT_ARGS(start), rec->xl_rmid)));
	if (!record_is_page_local(rec->xl_rmid, rec->xl_info))
		ereport(ERROR, (errmsg("strata_walredo: record at %X/%X (%s info 0x%02X) cannot be applied to a single page",
							   LSN_FORMAT_ARGS(start), GetRmgr(rec->xl_rmid).rm_name, rec->xl_info)));
	return rec;
}

/*
 * Point every block reference at a private relation. Returns true if some
 * reference went to OTHER_REL.
 */
static bool
remap_blocks(DecodedXLogRecord *dec, const RelFileNode *target, ForkNumber fork, BlockNumber blkno)
{
	bool		other = false;

	for (int id = 0; id <= dec->max_block_id; id++)
	{
		DecodedBkpBlock *blk = &dec->blocks[id];
		int			which;

		if (!blk->in_use)
			continue;
		if (blk->forknum > MAX_FORKNUM)
			ereport(ERROR, (errmsg("strata_walredo: block reference %d has invalid fork %d", id, blk->forknum)));
		which = (RelFileNodeEquals(blk->rnode, *target) && blk->forknum == fork && blk->blkno == blkno) ? 0 : 1;
		other |= which == 1;
		blk->rnode = fake_rnode[which];
		ensure_presized(which, blk->forknum, blk->blkno);
	}
	return other;
}

/*
 * brin_xlog_insert_update stores BufferGetBlockNumber() of block 0 (the
 * regular page) into the revmap (block 1), so when the revmap is the target
 * and block 0 is not, block 0 must come back as a valid buffer. (Neon patched
 * this routine to read the block number from the record instead.) We give it
 * an initialised page stamped with the record's end LSN in OTHER_REL: redo
 * sees BLK_DONE, leaves it alone, and the revmap gets the right block number.
 * The page is dropped with OTHER_REL's buffers after the record.
 */
static void
prime_brin_regular_page(DecodedXLogRecord *dec, XLogRecPtr end)
{
	DecodedBkpBlock *blk;
	uint8		op = dec->header.xl_info & XLOG_BRIN_OPMASK;
	Buffer		buf;

	if (dec->header.xl_rmid != RM_BRIN_ID || (op != XLOG_BRIN_INSERT && op != XLOG_BRIN_UPDATE))
		return;
	if (dec->max_block_id < 1 || !dec->blocks[0].in_use)
		return;
	blk = &dec->blocks[0];
	if (!RelFileNodeEquals(blk->rnode, fake_rnode[1]) ||
		(blk->flags & BKPBLOCK_WILL_INIT) || blk->apply_image)
		return;
	buf = ReadBufferWithoutRelcache(fake_rnode[1], blk->forknum, blk->blkno, RBM_ZERO_AND_LOCK, NULL, true);
	PageInit(BufferGetPage(buf), BLCKSZ, 0);
	PageSetLSN(BufferGetPage(buf), end);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/*
 * Apply request: rebuild one block from an optional base image and records.
 * The page is left in result_page.
 */
static void
do_apply(const char *p, uint32 len)
{
	RelFileNode target;
	ForkNumber	fork;
	BlockNumber blkno;
	uint32		flags,
				nrecs;
	const char *base = NULL;
	uint32		pos = SW_APPLY_HDR_LEN;
	Buffer		buf;
	ErrorContextCallback errcb;

	if (len < SW_APPLY_HDR_LEN)
		ereport(ERROR, (errmsg("strata_walredo: apply request of %u bytes is shorter than its header", len)));
	target.spcNode = get_u32(p);
	target.dbNode = get_u32(p + 4);
	target.relNode = get_u32(p + 8);
	fork = (ForkNumber) get_u32(p + 12);
	blkno = get_u32(p + 16);
	flags = get_u32(p + 20);
	nrecs = get_u32(p + 24);
	if (fork < MAIN_FORKNUM || fork > MAX_FORKNUM)
		ereport(ERROR, (errmsg("strata_walredo: invalid fork number %d", fork)));
	if (blkno == InvalidBlockNumber)
		ereport(ERROR, (errmsg("strata_walredo: invalid block number")));
	if (flags & SW_APPLY_HAS_BASE)
	{
		if (len - pos < BLCKSZ)
			ereport(ERROR, (errmsg("strata_walredo: apply request truncated in its base image")));
		base = p + pos;
		pos += BLCKSZ;
	}

	ensure_presized(0, fork, blkno);
	buf = ReadBufferWithoutRelcache(fake_rnode[0], fork, blkno, RBM_ZERO_AND_LOCK, NULL, true);
	if (base)
		memcpy(BufferGetPage(buf), base, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	errcb.callback = error_context_cb;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	InRecovery = true;
	for (uint32 i = 0; i < nrecs; i++)
	{
		XLogRecPtr	start,
					end;
		uint32		rlen;
		XLogRecord *rec;
		DecodedXLogRecord *dec;
		char	   *errormsg = NULL;
		Size		need;
		bool		touched_other;

		if (len - pos < SW_RECORD_HDR_LEN)
			ereport(ERROR, (errmsg("strata_walredo: apply request truncated at record %u of %u", i, nrecs)));
		start = get_u64(p + pos);
		end = get_u64(p + pos + 8);
		rlen = get_u32(p + pos + 16);
		pos += SW_RECORD_HDR_LEN;
		current_lsn = start;
		if (len - pos < rlen)
			ereport(ERROR, (errmsg("strata_walredo: apply request truncated in record at %X/%X",
								   LSN_FORMAT_ARGS(start))));
		rec = check_record(p + pos, rlen, start, end);
		pos += rlen;

		need = DecodeXLogRecordRequiredSpace(rlen);
		if (need > decode_buf_len)
		{
			Size		newlen = Max(need, decode_buf_len * 2);

			decode_buf = repalloc_huge(decode_buf, newlen);
			decode_buf_len = newlen;
		}
		dec = (DecodedXLogRecord *) decode_buf;
		memset(dec, 0, offsetof(DecodedXLogRecord, blocks));
		dec->size = need;
		if (!DecodeXLogRecord(reader, dec, rec, start, &errormsg))
			ereport(ERROR, (errmsg("strata_walredo: could not decode record at %X/%X: %s",
								   LSN_FORMAT_ARGS(start), errormsg ? errormsg : "unknown error")));
		dec->next_lsn = end;
		touched_other = remap_blocks(dec, &target, fork, blkno);
		if (touched_other)
			prime_brin_regular_page(dec, end);

		reader->record = dec;
		reader->ReadRecPtr = start;
		reader->EndRecPtr = end;
		GetRmgr(rec->xl_rmid).rm_redo(reader);
		reader->record = NULL;

		/*
		 * Our stand-in for Neon's redo_read_buffer_filter: a non-target page
		 * a record initialised must not be seen by the next record.
		 */
		if (touched_other)
			drop_private_buffers(1, 1);
	}
	InRecovery = false;
	current_lsn = InvalidXLogRecPtr;
	error_context_stack = errcb.previous;

	if (pos != len)
		ereport(ERROR, (errmsg("strata_walredo: apply request has %u trailing bytes", len - pos)));

	buf = ReadBufferWithoutRelcache(fake_rnode[0], fork, blkno, RBM_NORMAL, NULL, true);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(result_page.data, BufferGetPage(buf), BLCKSZ);
	UnlockReleaseBuffer(buf);
}

/*
 * rm_mask routines walk line pointers and write through them; refuse pages
 * whose header or items point outside the page instead of scribbling over
 * memory.
 */
static void
check_page_for_mask(RmgrId rmid, Page page)
{
	PageHeader	ph = (PageHeader) page;

	if (PageIsNew(page))
		return;
	if (ph->pd_lower < SizeOfPageHeaderData || ph->pd_lower > ph->pd_upper ||
		ph->pd_upper > ph->pd_special || ph->pd_special > BLCKSZ ||
		(ph->pd_flags & ~PD_VALID_FLAG_BITS) != 0)
		ereport(ERROR, (errmsg("strata_walredo: page to mask has an invalid header (lower %u upper %u special %u flags 0x%X)",
							   ph->pd_lower, ph->pd_upper, ph->pd_special, ph->pd_flags)));
	/*
	 * Only heap_mask writes through line pointers; other masks touch the
	 * header, the line pointer array and the special space, which the
	 * header check above bounds. Metapages of several index AMs set
	 * pd_lower past their metadata, so their "line pointers" are not items.
	 */
	if (rmid != RM_HEAP_ID && rmid != RM_HEAP2_ID)
		return;
	for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);

		if (ItemIdHasStorage(iid) &&
			(uint32) ItemIdGetOffset(iid) + ItemIdGetLength(iid) > BLCKSZ)
			ereport(ERROR, (errmsg("strata_walredo: page to mask has item %u outside the page", off)));
	}
}

static void
do_mask(const char *p, uint32 len)
{
	uint32		rmid,
				blkno;

	if (len != 8 + BLCKSZ)
		ereport(ERROR, (errmsg("strata_walredo: mask request has %u bytes, want %d", len, 8 + BLCKSZ)));
	rmid = get_u32(p);
	blkno = get_u32(p + 4);
	if (rmid > RM_MAX_ID || !RmgrIdExists((RmgrId) rmid) || GetRmgr((RmgrId) rmid).rm_mask == NULL)
		ereport(ERROR, (errmsg("strata_walredo: resource manager %u has no mask function", rmid)));
	memcpy(result_page.data, p + 8, BLCKSZ);
	check_page_for_mask((RmgrId) rmid, (Page) result_page.data);
	GetRmgr((RmgrId) rmid).rm_mask(result_page.data, blkno);
}

/* Test aid: hold the request for a while, so deadlines can be exercised. */
static void
do_sleep(const char *p, uint32 len)
{
	uint32		ms;

	if (len != 4)
		ereport(ERROR, (errmsg("strata_walredo: sleep request has %u bytes, want 4", len)));
	ms = Min(get_u32(p), SW_MAX_SLEEP_MS);
	for (uint32 slept = 0; slept < ms; slept += 10)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
}

/* Run one request in a subtransaction and answer it. */
static void
handle_request(char type, uint32 reqid, const char *payload, uint32 len)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	volatile XLogRecPtr failed_lsn = InvalidXLogRecPtr;

	current_reqid = reqid;
	current_lsn = InvalidXLogRecPtr;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		switch (type)
		{
			case SW_REQ_APPLY:
				do_apply(payload, len);
				break;
			case SW_REQ_MASK:
				do_mask(payload, len);
				break;
			case SW_REQ_SLEEP:
				do_sleep(payload, len);
				break;
			default:
				ereport(ERROR, (errmsg("strata_walredo: unknown request type 0x%02X", (unsigned char) type)));
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		InRecovery = false;
		failed_lsn = current_lsn;
		current_lsn = InvalidXLogRecPtr;
		reader->record = NULL;
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	/* Nothing of a request may survive it: not pages, not invalid-page notes. */
	drop_private_buffers(0, SW_NRELS);
	for (int i = 0; i < SW_NRELS; i++)
		for (ForkNumber f = MAIN_FORKNUM; f <= MAX_FORKNUM; f++)
			XLogDropRelation(fake_rnode[i], f);

	if (edata != NULL)
		send_error(reqid, failed_lsn, edata->message ? edata->message : "unknown error");
	else if (type == SW_REQ_SLEEP)
		send_reply(SW_REPLY_DONE, reqid, NULL, 0);
	else
		send_reply(SW_REPLY_PAGE, reqid, result_page.data, BLCKSZ);
}

static void
send_handshake(void)
{
	const char *build_id = STRATA_WALREDO_BUILD_ID;
	uint32		idlen = (uint32) strlen(build_id);
	char		hdr[SW_MAGIC_LEN + 12];

	memcpy(hdr, SW_MAGIC, SW_MAGIC_LEN);
	put_u32(hdr + SW_MAGIC_LEN, SW_PROTOCOL_VERSION);
	put_u32(hdr + SW_MAGIC_LEN + 4, PG_VERSION_NUM);
	put_u32(hdr + SW_MAGIC_LEN + 8, idlen);
	write_all(hdr, sizeof(hdr));
	write_all(build_id, idlen);
	if (fflush(stdout) != 0)
		ereport(FATAL, (errmsg("strata_walredo: flush of stdout failed: %m")));
}

Datum
strata_walredo_main(PG_FUNCTION_ARGS)
{
	MemoryContext oldcxt;
	char		hdr[SW_HEADER_LEN];

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	reader = XLogReaderAllocate(wal_segment_size, NULL, XL_ROUTINE(.page_read = NULL), NULL);
	if (reader == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("strata_walredo: out of memory")));
	record_buf_len = 64 * 1024;
	record_buf = palloc(record_buf_len);
	decode_buf_len = DecodeXLogRecordRequiredSpace(record_buf_len);
	decode_buf = palloc(decode_buf_len);
	request_cxt = AllocSetContextCreate(TopMemoryContext, "strata_walredo request",
										ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(oldcxt);

	/* btree_redo and others allocate in contexts their rm_startup creates. */
	for (int rmid = 0; rmid <= RM_MAX_ID; rmid++)
		if (RmgrIdExists((RmgrId) rmid) && GetRmgr((RmgrId) rmid).rm_startup != NULL)
			GetRmgr((RmgrId) rmid).rm_startup();

	create_private_relations();
	send_handshake();

	for (;;)
	{
		uint32		reqid,
					len;
		char	   *payload;

		if (!read_exact(hdr, SW_HEADER_LEN, true))
			break;				/* EOF: the Go side closed stdin; exit cleanly */
		reqid = get_u32(hdr + 1);
		len = get_u32(hdr + 5);
		if (!AllocSizeIsValid(len))
			ereport(FATAL, (errmsg("strata_walredo: request %u has payload length %u, above the limit", reqid, len)));

		/* Read the whole request first, so an error never desyncs the stream. */
		oldcxt = MemoryContextSwitchTo(request_cxt);
		payload = palloc(Max(len, 1));
		if (len > 0)
			read_exact(payload, len, false);

		if (hdr[0] == SW_REQ_PING)
			send_reply(SW_REPLY_PONG, reqid, payload, len);
		else
			handle_request(hdr[0], reqid, payload, len);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(request_cxt);
	}

	for (int rmid = 0; rmid <= RM_MAX_ID; rmid++)
		if (RmgrIdExists((RmgrId) rmid) && GetRmgr((RmgrId) rmid).rm_cleanup != NULL)
			GetRmgr((RmgrId) rmid).rm_cleanup();
	PG_RETURN_VOID();
}
