// Package durable owns crash-safe file writes: WriteFile writes to a
// temporary file in the same directory, fsyncs it, renames it over the
// target and fsyncs the directory, so after a crash the target holds either
// the old or the new content, never a mix; SyncDir makes a directory entry
// (create, rename, unlink) durable.
//
// Callers acknowledge nothing before these functions return nil.
package durable
