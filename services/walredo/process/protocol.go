package process

// Wire protocol between the Go side and strata_walredo_main(); the C side is
// services/walredo/pgext/strata_walredo.c. All integers are little-endian.
//
// Handshake (child → us, once, after the single-user banner on stdout):
//
//	"STRWREDO" | u32 protocol version | u32 PG_VERSION_NUM | u32 n | n bytes build id
//
// Every request and reply is a frame:
//
//	u8 type | u32 request id | u32 payload length | payload
//
// Requests:
//
//	'A' apply: u32 spc, db, rel, fork, blkno, flags (bit 0: base image
//	    follows), nrecs | [8192 base] | nrecs × (u64 start LSN, u64 end LSN,
//	    u32 len, len bytes of record)                     → 'P' or 'E'
//	'M' mask:  u32 rmid, u32 blkno, 8192 page              → 'P' or 'E'
//	'H' ping:  any payload                                 → 'H' echoing it
//	'S' sleep: u32 milliseconds (≤ 600000; test aid)       → 'D' or 'E'
//
// Replies:
//
//	'P' 8192-byte page · 'H' pong · 'D' done · 'E' u64 failing record LSN
//	(0 = none) followed by the message text.
//
// EOF on stdin makes the function return and the backend exit cleanly.
const (
	handshakeMagic  = "STRWREDO"
	protocolVersion = 1
	frameHeaderLen  = 9

	reqApply = 'A'
	reqMask  = 'M'
	reqPing  = 'H'
	reqSleep = 'S'

	replyPage  = 'P'
	replyPong  = 'H'
	replyDone  = 'D'
	replyError = 'E'

	applyHasBase   = 1
	applyHeaderLen = 28
	recordHdrLen   = 20

	// maxPayload mirrors the child's MaxAllocSize limit.
	maxPayload = 1<<30 - 1
	// maxHandshakeScan bounds how much banner we skip looking for the magic.
	maxHandshakeScan = 64 << 10
	// maxBuildIDLen bounds the build id in the handshake.
	maxBuildIDLen = 256
)
