// Package pageserver is the storage service: it ingests WAL, stores every
// page version by LSN in layered storage, and serves GetPage@LSN, relation
// sizes, SLRU segments and base/full backups over gRPC (design §4, §5).
//
// This file set holds only the service's configuration and Run, which wires
// the components together; the components live in the sub-packages
// (pagecache, tenant, timeline, layer, ...).
package pageserver
