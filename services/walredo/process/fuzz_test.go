package process

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stratadb/strata/internal/pgtypes"
)

// FuzzReadReply feeds arbitrary child output to the reply parser: it must
// return an error or a page, never panic or over-read its buffers.
func FuzzReadReply(f *testing.F) {
	frame := func(typ byte, id uint32, payload []byte) []byte {
		b := []byte{typ}
		b = binary.LittleEndian.AppendUint32(b, id)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
		return append(b, payload...)
	}
	f.Add(frame(replyPage, 1, make([]byte, pgtypes.BLCKSZ)))
	f.Add(frame(replyError, 1, append(make([]byte, 8), "boom"...)))
	f.Add(frame(replyError, 1, []byte{1}))
	f.Add(frame(replyPage, 2, nil))
	f.Add(frame(replyPong, 1, make([]byte, 8)))
	f.Add([]byte{replyPage, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Child{r: bufio.NewReader(bytes.NewReader(data))}
		out := make([]byte, pgtypes.BLCKSZ)
		_ = c.readReply(1, replyPage, out)
	})
}

// FuzzLastRecordLSN: the crash explanation parser never panics.
func FuzzLastRecordLSN(f *testing.F) {
	f.Add("CONTEXT:  strata_walredo: request 3 applying record at 0/3000000")
	f.Add("applying record at FFFFFFFF/FFFFFFFF")
	f.Add("applying record at 1/")
	f.Fuzz(func(t *testing.T, line string) {
		_ = lastRecordLSN([]string{line, "PANIC:  x"})
	})
}
