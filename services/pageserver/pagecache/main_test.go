package pagecache

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestCache returns a cache of n slots with metrics on a private registry.
func newTestCache(t testing.TB, n int) *Cache {
	t.Helper()
	c, err := New(Config{SizeBytes: int64(n) * PageSize}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTinyCache bypasses MinSlots so the clock tests can reason about 3 slots.
func newTinyCache(t testing.TB, n int) *Cache {
	t.Helper()
	c, err := New(Config{SizeBytes: int64(max(n, MinSlots)) * PageSize}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.slots = c.slots[:n]
	c.arena = c.arena[:n*PageSize]
	return c
}
