package spool

import (
	"context"
	"testing"

	"github.com/stratadb/strata/internal/lsn"
)

// Baseline (2 cores shared with other builds, t.TempDir on the container's
// disk, -benchtime 2s):
//
//	BenchmarkAppend-2       37357 ns/op   219 MB/s   0 B/op  0 allocs/op  (8 KiB, no fsync)
//	BenchmarkAppendSync-2 4249414 ns/op    31 MB/s                        (128 KiB + fsync each)
//	BenchmarkReader-2      151094 ns/op   867 MB/s 521 B/op  0 allocs/op  (128 KiB frames)
//
// fsync dominates: the replication client therefore syncs once per 1 MiB
// or after 2 ms without new WAL, not per message.
func BenchmarkAppend(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 8<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	at := testStart
	for b.Loop() {
		if err := s.Append(at, data); err != nil {
			b.Fatal(err)
		}
		at += lsn.LSN(len(data))
	}
}

func BenchmarkAppendSync(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 128<<10)
	b.SetBytes(int64(len(data)))
	at := testStart
	for b.Loop() {
		if err := s.Append(at, data); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Sync(); err != nil {
			b.Fatal(err)
		}
		at += lsn.LSN(len(data))
	}
}

func BenchmarkReader(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, MaxFrameBytes)
	at := testStart
	for range 256 { // 32 MiB, two segments
		if err := s.Append(at, data); err != nil {
			b.Fatal(err)
		}
		at += lsn.LSN(len(data))
	}
	if _, err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(MaxFrameBytes)
	b.ReportAllocs()
	rd, _ := s.NewReader(testStart)
	defer rd.Close()
	ctx := context.Background()
	for b.Loop() {
		if rd.Pos() >= at {
			_ = rd.Close()
			rd, _ = s.NewReader(testStart)
		}
		if _, err := rd.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
