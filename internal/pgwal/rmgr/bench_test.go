package rmgr

import (
	"testing"
)

// Baseline, measured 2026-11-29 on the shared 2-core dev machine (AMD EPYC,
// go1.26, -benchtime=300ms; the machine is noisy, expect +-50%):
//
//	BenchmarkDecode/heap_insert       42 ns/op     8 B/op  1 allocs/op
//	BenchmarkDecode/commit_invals    239 ns/op   192 B/op  2 allocs/op
//	BenchmarkDecode/commit_subxacts  650-1300 ns/op  480 B/op  3 allocs/op (70 subxacts)
//	BenchmarkDecode/checkpoint       203 ns/op    96 B/op  1 allocs/op
//	BenchmarkDecode/btree_generic     52 ns/op    32 B/op  1 allocs/op
//
// Decode runs once per WAL record in the pageserver's ingest, so it must stay
// in the tens-to-hundreds of nanoseconds and allocate O(1) times per record.
func BenchmarkDecode(b *testing.B) {
	subxacts := buf{}.u64(uint64(ts)).u32(XactXinfoHasSubxacts).i32(70)
	for i := range 70 {
		subxacts = subxacts.u32(uint32(1000 + i))
	}
	commitInvals := buf{}.u64(uint64(ts)).u32(XactXinfoHasDBInfo | XactXinfoHasInvals).u32(5).u32(1663).i32(4)
	for range 4 {
		commitInvals = append(commitInvals, invalMsg(55, 5, 1)...)
	}
	cases := []struct {
		name string
		id   ID
		info uint8
		data []byte
	}{
		{"heap_insert", Heap, InfoHeapInsert, []byte{0x5b, 0x00, 0x01}},
		{"commit_invals", Transaction, InfoXactCommit | XactHasInfo, commitInvals},
		{"commit_subxacts", Transaction, InfoXactCommit | XactHasInfo, subxacts},
		{"checkpoint", XLOG, InfoCheckpointOnline, CheckPoint{NextXid: 740}.Encode()},
		{"btree_generic", Btree, 0x00, []byte{1, 0}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if _, err := Decode(c.id, c.info, c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
