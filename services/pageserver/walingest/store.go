package walingest

import (
	"context"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Store is what the ingest needs from a timeline. The timeline's storage
// engine implements it; MemStore is the in-memory twin for tests.
type Store interface {
	// Latest returns the image held by the newest value stored for a
	// metadata key (relation or SLRU segment size, a directory, a relmapper
	// file, the checkpoint, the control file), or an error wrapping
	// ErrNotFound. Metadata keys only ever hold images. It must see this
	// Ingester's own earlier Puts. The caller does not modify the result.
	Latest(ctx context.Context, key keyspace.Key) ([]byte, error)
	// Put stores encoded (a package value encoding) for key at lsn, the END
	// LSN of the record that produced it: a read at X sees the records that
	// end at or before X (Neon's convention). The Ingester never puts the
	// same key twice at one LSN. encoded is valid only during the call (the
	// Ingester reuses its buffer): a store keeps a copy.
	Put(ctx context.Context, key keyspace.Key, at lsn.LSN, encoded []byte) error
}

// PageReader reads materialized pages; the Ingester needs it only for
// CREATE DATABASE ... FILE_COPY, whose redo copies every block of the
// source database as of the record (PostgreSQL copies the files).
type PageReader interface {
	// PageAt returns the 8 KB page of a relation block key as of at
	// (inclusive: it includes values stored at at).
	PageAt(ctx context.Context, key keyspace.Key, at lsn.LSN) ([]byte, error)
}
