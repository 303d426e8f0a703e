package redo_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/redo"
)

func TestValidate(t *testing.T) {
	tag := pgtypes.BufferTag{Rel: pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}, BlockNum: 1}
	rec := redo.Record{Start: 0x100, End: 0x140, Raw: make([]byte, 40)}
	page := make([]byte, pgtypes.BLCKSZ)
	cases := []struct {
		name string
		req  redo.Request
		page []byte
		ok   bool
	}{
		{"valid", redo.Request{Tag: tag, Records: []redo.Record{rec}}, page, true},
		{"valid with base", redo.Request{Tag: tag, Base: make([]byte, pgtypes.BLCKSZ)}, page, true},
		{"short result buffer", redo.Request{Tag: tag}, make([]byte, 10), false},
		{"short base", redo.Request{Tag: tag, Base: make([]byte, 10)}, page, false},
		{"bad fork", redo.Request{Tag: pgtypes.BufferTag{Rel: pgtypes.RelTag{ForkNum: 9}}}, page, false},
		{"invalid block", redo.Request{Tag: pgtypes.BufferTag{BlockNum: pgtypes.InvalidBlockNumber}}, page, false},
		{"short record", redo.Request{Tag: tag, Records: []redo.Record{{Start: 1, End: 2, Raw: make([]byte, 23)}}}, page, false},
		{"end before start", redo.Request{Tag: tag, Records: []redo.Record{{Start: 0x140, End: 0x140, Raw: make([]byte, 40)}}}, page, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate(tc.page)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, redo.ErrInvalidRequest)
			}
		})
	}
}

func TestRecordError(t *testing.T) {
	err := error(&redo.RecordError{LSN: lsn.MustParse("0/16B3F28"), Msg: "incorrect CRC", Kind: redo.ErrRecordFailed})
	require.ErrorIs(t, err, redo.ErrRecordFailed)
	require.False(t, errors.Is(err, redo.ErrChildCrashed))
	require.Equal(t, "redo: record could not be applied: record at 0/16B3F28: incorrect CRC", err.Error())
	crash := &redo.RecordError{Msg: "child exited", Kind: redo.ErrChildCrashed}
	require.Equal(t, "redo: walredo child crashed: child exited", crash.Error())
}
