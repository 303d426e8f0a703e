package ingest

import "errors"

var (
	// ErrWALGap marks a pageserver that needs WAL the spool does not hold.
	ErrWALGap = errors.New("ingest: pageserver needs WAL the spool no longer holds")
	// ErrProtocol marks a pageserver reply that breaks the Ingest protocol.
	ErrProtocol = errors.New("ingest: protocol violation")
)
