package rmgr

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/pgtypes"
)

// CLOG and CommitTs record types (src/include/access/clog.h, commit_ts.h).
const (
	InfoClogZeroPage     uint8 = 0x00
	InfoClogTruncate     uint8 = 0x10
	InfoCommitTsZeroPage uint8 = 0x00
	InfoCommitTsTruncate uint8 = 0x10
)

// MultiXact record types (src/include/access/multixact.h).
const (
	InfoMultiXactZeroOffPage uint8 = 0x00
	InfoMultiXactZeroMemPage uint8 = 0x10
	InfoMultiXactCreateID    uint8 = 0x20
	InfoMultiXactTruncateID  uint8 = 0x30
)

// ClogZeroPage is CLOG ZEROPAGE: pg_xact page PageNo is initialized to zeros.
type ClogZeroPage struct{ PageNo int32 }

func (*ClogZeroPage) isBody() {}

// Rmgr implements Body.
func (*ClogZeroPage) Rmgr() ID { return CLOG }

// RecordName implements Body.
func (*ClogZeroPage) RecordName() string { return "ZEROPAGE" }

// String implements Body.
func (b *ClogZeroPage) String() string { return fmt.Sprintf("page %d", b.PageNo) }

// ClogTruncate is CLOG TRUNCATE (xl_clog_truncate): segments before the one
// holding PageNo are removed; OldestXact/OldestXactDb are the new oldestXid.
type ClogTruncate struct {
	PageNo       int32
	OldestXact   uint32
	OldestXactDb pgtypes.Oid
}

func (*ClogTruncate) isBody() {}

// Rmgr implements Body.
func (*ClogTruncate) Rmgr() ID { return CLOG }

// RecordName implements Body.
func (*ClogTruncate) RecordName() string { return "TRUNCATE" }

// String implements Body.
func (b *ClogTruncate) String() string {
	return fmt.Sprintf("page %d; oldestXact %d", b.PageNo, b.OldestXact)
}

func decodeCLOG(info uint8, data []byte) (Body, error) {
	c := newCursor(CLOG, info, data)
	var b Body
	switch info & RmgrInfoMask {
	case InfoClogZeroPage:
		b = &ClogZeroPage{PageNo: c.i32("pageno")}
	case InfoClogTruncate:
		t := &ClogTruncate{}
		t.PageNo = c.i32("pageno")
		t.OldestXact = c.u32("oldestXact")
		t.OldestXactDb = c.oid("oldestXactDb")
		b = t
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}

// CommitTsZeroPage is CommitTs ZEROPAGE.
type CommitTsZeroPage struct{ PageNo int32 }

func (*CommitTsZeroPage) isBody() {}

// Rmgr implements Body.
func (*CommitTsZeroPage) Rmgr() ID { return CommitTs }

// RecordName implements Body.
func (*CommitTsZeroPage) RecordName() string { return "ZEROPAGE" }

// String implements Body.
func (b *CommitTsZeroPage) String() string { return fmt.Sprintf("%d", b.PageNo) }

// CommitTsTruncate is CommitTs TRUNCATE (xl_commit_ts_truncate).
type CommitTsTruncate struct {
	PageNo    int32
	OldestXid uint32
}

func (*CommitTsTruncate) isBody() {}

// Rmgr implements Body.
func (*CommitTsTruncate) Rmgr() ID { return CommitTs }

// RecordName implements Body.
func (*CommitTsTruncate) RecordName() string { return "TRUNCATE" }

// String implements Body.
func (b *CommitTsTruncate) String() string {
	return fmt.Sprintf("pageno %d, oldestXid %d", b.PageNo, b.OldestXid)
}

func decodeCommitTs(info uint8, data []byte) (Body, error) {
	c := newCursor(CommitTs, info, data)
	var b Body
	switch info & RmgrInfoMask {
	case InfoCommitTsZeroPage:
		b = &CommitTsZeroPage{PageNo: c.i32("pageno")}
	case InfoCommitTsTruncate:
		t := &CommitTsTruncate{}
		t.PageNo = c.i32("pageno")
		t.OldestXid = c.u32("oldestXid")
		b = t
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}

// MultiXactZeroOffPage is MultiXact ZERO_OFF_PAGE: page PageNo of
// pg_multixact/offsets is initialized to zeros.
type MultiXactZeroOffPage struct{ PageNo int32 }

func (*MultiXactZeroOffPage) isBody() {}

// Rmgr implements Body.
func (*MultiXactZeroOffPage) Rmgr() ID { return MultiXact }

// RecordName implements Body.
func (*MultiXactZeroOffPage) RecordName() string { return "ZERO_OFF_PAGE" }

// String implements Body.
func (b *MultiXactZeroOffPage) String() string { return fmt.Sprintf("%d", b.PageNo) }

// MultiXactZeroMemPage is MultiXact ZERO_MEM_PAGE: page PageNo of
// pg_multixact/members is initialized to zeros.
type MultiXactZeroMemPage struct{ PageNo int32 }

func (*MultiXactZeroMemPage) isBody() {}

// Rmgr implements Body.
func (*MultiXactZeroMemPage) Rmgr() ID { return MultiXact }

// RecordName implements Body.
func (*MultiXactZeroMemPage) RecordName() string { return "ZERO_MEM_PAGE" }

// String implements Body.
func (b *MultiXactZeroMemPage) String() string { return fmt.Sprintf("%d", b.PageNo) }

// MultiXactStatus is the lock mode of one multixact member.
type MultiXactStatus int32

// MultiXactStatus values (src/include/access/multixact.h).
const (
	MultiXactStatusForKeyShare    MultiXactStatus = 0
	MultiXactStatusForShare       MultiXactStatus = 1
	MultiXactStatusForNoKeyUpdate MultiXactStatus = 2
	MultiXactStatusForUpdate      MultiXactStatus = 3
	MultiXactStatusNoKeyUpdate    MultiXactStatus = 4
	MultiXactStatusUpdate         MultiXactStatus = 5
)

// String returns the abbreviation pg_waldump prints ("keysh", "upd", ...).
func (s MultiXactStatus) String() string {
	switch s {
	case MultiXactStatusForKeyShare:
		return "keysh"
	case MultiXactStatusForShare:
		return "sh"
	case MultiXactStatusForNoKeyUpdate:
		return "fornokeyupd"
	case MultiXactStatusForUpdate:
		return "forupd"
	case MultiXactStatusNoKeyUpdate:
		return "nokeyupd"
	case MultiXactStatusUpdate:
		return "upd"
	}
	return "unk"
}

// MultiXactMember is one member of a multixact.
type MultiXactMember struct {
	Xid    uint32
	Status MultiXactStatus
}

// MultiXactCreate is MultiXact CREATE_ID (xl_multixact_create): multixact
// Mid's members are stored starting at member offset Moff.
type MultiXactCreate struct {
	Mid     uint32
	Moff    uint32
	Members []MultiXactMember
}

func (*MultiXactCreate) isBody() {}

// Rmgr implements Body.
func (*MultiXactCreate) Rmgr() ID { return MultiXact }

// RecordName implements Body.
func (*MultiXactCreate) RecordName() string { return "CREATE_ID" }

// String implements Body.
func (b *MultiXactCreate) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%d offset %d nmembers %d: ", b.Mid, b.Moff, len(b.Members))
	for _, m := range b.Members {
		fmt.Fprintf(&s, "%d (%s) ", m.Xid, m.Status)
	}
	return s.String()
}

// MultiXactTruncate is MultiXact TRUNCATE_ID (xl_multixact_truncate):
// offsets [StartTruncOff, EndTruncOff) and members [StartTruncMemb,
// EndTruncMemb) are removed; EndTruncOff is the new oldestMulti.
type MultiXactTruncate struct {
	OldestMultiDB  pgtypes.Oid
	StartTruncOff  uint32
	EndTruncOff    uint32
	StartTruncMemb uint32
	EndTruncMemb   uint32
}

func (*MultiXactTruncate) isBody() {}

// Rmgr implements Body.
func (*MultiXactTruncate) Rmgr() ID { return MultiXact }

// RecordName implements Body.
func (*MultiXactTruncate) RecordName() string { return "TRUNCATE_ID" }

// String implements Body.
func (b *MultiXactTruncate) String() string {
	return fmt.Sprintf("offsets [%d, %d), members [%d, %d)",
		b.StartTruncOff, b.EndTruncOff, b.StartTruncMemb, b.EndTruncMemb)
}

func decodeMultiXact(info uint8, data []byte) (Body, error) {
	c := newCursor(MultiXact, info, data)
	var b Body
	switch info & RmgrInfoMask {
	case InfoMultiXactZeroOffPage:
		b = &MultiXactZeroOffPage{PageNo: c.i32("pageno")}
	case InfoMultiXactZeroMemPage:
		b = &MultiXactZeroMemPage{PageNo: c.i32("pageno")}
	case InfoMultiXactCreateID:
		m := &MultiXactCreate{}
		m.Mid = c.u32("mid")
		m.Moff = c.u32("moff")
		n := c.count("members", 8)
		if n > 0 && c.need(8*n, "members") {
			m.Members = make([]MultiXactMember, n)
			for i := range m.Members {
				m.Members[i] = MultiXactMember{Xid: c.u32("member xid"), Status: MultiXactStatus(c.i32("member status"))}
			}
		}
		b = m
	case InfoMultiXactTruncateID:
		t := &MultiXactTruncate{}
		t.OldestMultiDB = c.oid("oldestMultiDB")
		t.StartTruncOff = c.u32("startTruncOff")
		t.EndTruncOff = c.u32("endTruncOff")
		t.StartTruncMemb = c.u32("startTruncMemb")
		t.EndTruncMemb = c.u32("endTruncMemb")
		b = t
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}
