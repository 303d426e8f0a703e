package lsn

import (
	"fmt"
	"testing"
)

// Baseline: fmt.Sprintf("%X/%X") is what String replaces.
//
// Measured on the shared, loaded 2-core dev box (AMD EPYC, go1.26):
//
//	BenchmarkBaselineSprintf  ~245 ns/op  16 B/op  2 allocs/op
//	BenchmarkString           ~162 ns/op  32 B/op  2 allocs/op (strings.ToUpper copies)
//	BenchmarkParse            ~58 ns/op    0 allocs/op
//	BenchmarkFetchMax         ~3.5 ns/op   0 allocs/op (uncontended)
func BenchmarkBaselineSprintf(b *testing.B) {
	l := MustParse("16/B374D848")
	b.ReportAllocs()
	for b.Loop() {
		_ = fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l))
	}
}

func BenchmarkString(b *testing.B) {
	l := MustParse("16/B374D848")
	b.ReportAllocs()
	for b.Loop() {
		_ = l.String()
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("16/B374D848"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFetchMax(b *testing.B) {
	a := NewAtomic(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.FetchMax(LSN(i))
	}
}
