// Package tenant owns the pageserver's repository model on disk (design §4):
// the Repository rooted at a work directory, its tenants, and each tenant's
// timelines with their metadata file:
//
//	<workdir>/tenants/<tenant_id>/timelines/<timeline_id>/metadata
//
// Ids are internal/ids values (32 lowercase hex characters), parsed strictly
// when read back from directory names; entries whose names are not ids are
// logged at error level and left alone (they may be an operator's).
//
// It does not own what lives in a timeline directory besides the metadata
// file (layer files, ephemeral files: the timeline's packages), nor the WAL
// position of a running timeline: the LSN checks of a branch against the
// ancestor's last_record_lsn and in-memory GC cutoff belong to the caller,
// through the BranchCheck hook of CreateTimeline.
//
// # Crash safety
//
// Creation builds the whole directory under a temporary name in the same
// parent (".tmp-<id>-<random>": a tenant with its empty timelines/
// directory; a timeline with its metadata file written and fsynced), fsyncs
// it, then renames it to its final name with RENAME_NOREPLACE and fsyncs the
// parent. The rename is the commit point: after a crash either the final
// directory is complete or only a temporary one exists. Deletion renames the
// directory to a tombstone (".deleted-<id>-<random>"), fsyncs the parent,
// then removes the tombstone; the rename is the commit point. Open removes
// every temporary and tombstone directory it finds, and metadata temp files
// left by an interrupted write (durable.RemoveTemps), before loading.
//
// # Broken tenants and timelines
//
// Open never fails because one tenant or timeline is damaged. A tenant
// without a readable timelines/ directory, or a timeline whose metadata file
// is missing or corrupt, or whose ancestor is missing, is loaded in
// StateBroken with the reason (an error naming the file) logged at error
// level. Broken entries stay listed (so an operator sees and can delete
// them) and keep their id taken; GetTenant and Tenant.Timeline return an
// error wrapping ErrCorrupt and the cause for them. Open fails only when the
// work directory itself cannot be read or prepared.
//
// # Concurrency
//
// All methods are safe for concurrent use. A Repository serializes tenant
// creation and deletion with one lifecycle mutex held across the existence
// check, the disk work and the commit rename, so two concurrent creates of
// one id yield exactly one success and one ErrAlreadyExists; lookups use a
// separate read-write mutex and never wait for disk I/O. Each Tenant does the
// same for its timelines. Metadata updates of one timeline are serialized by
// that timeline; readers see the last successfully written metadata. Lock
// order: repository lifecycle → tenant lifecycle → timeline write lock →
// the maps' mutexes. Nothing here starts goroutines.
//
// One Repository per work directory per process: the package does not lock
// the directory against other processes.
package tenant
