// Package seqwait lets goroutines wait until a monotonically increasing
// lsn.LSN reaches a target, the way the pageserver's GetPage@LSN waits for
// last_record_lsn ("waiting for WAL at X, last_record_lsn Y").
//
// It owns one value and the set of goroutines parked on it. It does not know
// what the value means, does not log and starts no goroutines.
//
// Algorithm: the current value is an atomic word, so Load and WaitFor on an
// already reached target never take the lock. A waiter whose target is not
// reached registers itself, under a mutex, in a min-heap ordered by target and
// parks on its own channel. Advance stores the new value under the same mutex
// and pops only the waiters whose targets are now reached, closing their
// channels: O(k log n) for k woken out of n parked, and one comparison with
// the heap's top when nobody is satisfied (the common case for many parked
// waiters far ahead, and with no waiters at all). Because both the check of a
// waiter's target and Advance's store happen under the mutex, a wake-up can
// never be missed. A waiter that gives up (timeout, cancellation) removes
// itself from the heap by index. No goroutine is started per waiter.
//
// The value never moves backwards: Advance to a smaller value is reported
// with ErrBackwards and changes nothing. Shutdown fails every parked and
// every later WaitFor with ErrShutdown; Advance keeps recording the value
// after Shutdown so that Load still reports progress.
//
// Concurrency: all methods of *SeqWait are safe for concurrent use. A SeqWait
// must not be copied after first use. It holds no on-disk state.
package seqwait
