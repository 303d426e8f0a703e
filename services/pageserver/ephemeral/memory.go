package ephemeral

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ChunkSize is the unit in which appended bytes leave the write buffer:
// written to the file with one pwrite, or kept in memory (see Memory).
const ChunkSize = writeBufferBlocks * BlockSize

// Memory is the process-wide budget of memory in which ephemeral files
// keep their full chunks instead of writing them to the file (see the
// package doc). Safe for concurrent use; a nil *Memory is a budget of zero.
type Memory struct {
	limit int64 // bytes; a multiple of ChunkSize

	mu   sync.Mutex
	used int64    // bytes of chunks held by files
	free [][]byte // ChunkSize buffers for reuse; used + len(free)*ChunkSize ≤ limit

	written atomic.Uint64 // chunks written to files (the budget was spent)
}

// NewMemory returns a budget of limit bytes (rounded down to whole
// chunks).
func NewMemory(limit uint64) *Memory {
	return &Memory{limit: int64(limit / ChunkSize * ChunkSize)}
}

// Limit returns the budget in bytes.
func (m *Memory) Limit() uint64 {
	if m == nil {
		return 0
	}
	return uint64(m.limit)
}

// Used returns the bytes of chunks that files hold in memory now.
func (m *Memory) Used() uint64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(m.used)
}

// Written returns the bytes of chunks that files wrote because the budget
// was spent.
func (m *Memory) Written() uint64 {
	if m == nil {
		return 0
	}
	return m.written.Load() * ChunkSize
}

// Register registers the budget's metrics with reg.
func (m *Memory) Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_pageserver_ephemeral_memory_bytes",
			Help: "Bytes of open and frozen in-memory layers kept in memory (ephemeral_memory_limit bounds it).",
		}, func() float64 { return float64(m.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_pageserver_ephemeral_memory_limit_bytes",
			Help: "The ephemeral_memory_limit.",
		}, func() float64 { return float64(m.Limit()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strata_pageserver_ephemeral_written_bytes_total",
			Help: "Bytes of in-memory layers written to ephemeral files because ephemeral_memory_limit was reached.",
		}, func() float64 { return float64(m.Written()) }),
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ephemeral: registering metrics: %w", err)
	}
	return nil
}

// reserve takes one chunk of the budget, or reports that it is spent.
func (m *Memory) reserve() bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used+ChunkSize > m.limit {
		return false
	}
	m.used += ChunkSize
	return true
}

// buffer returns a ChunkSize buffer, reused when one is free. Its content
// is arbitrary: a file reads only the bytes it appended.
func (m *Memory) buffer() []byte {
	if m != nil {
		m.mu.Lock()
		if n := len(m.free); n > 0 {
			b := m.free[n-1]
			m.free[n-1] = nil
			m.free = m.free[:n-1]
			m.mu.Unlock()
			return b
		}
		m.mu.Unlock()
	}
	return make([]byte, ChunkSize)
}

// release gives back the budget of reserved chunks and keeps bufs (each
// ChunkSize, no longer used by anyone) for reuse as far as the budget has
// room for them.
func (m *Memory) release(reserved int, bufs [][]byte) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used -= int64(reserved) * ChunkSize
	for _, b := range bufs {
		if m.used+int64(len(m.free)+1)*ChunkSize > m.limit {
			break
		}
		m.free = append(m.free, b)
	}
}
