package seqwait

import "errors"

// ErrBackwards is returned (wrapped, naming both values) by Advance when the
// new value is smaller than the current one. The value is left unchanged.
var ErrBackwards = errors.New("seqwait: value would move backwards")

// ErrTimeout is returned (wrapped, naming the target and the current value)
// by WaitFor when its timeout elapses before the target is reached.
var ErrTimeout = errors.New("seqwait: timed out")

// ErrShutdown is returned (wrapped, with the cause given to Shutdown if any)
// by WaitFor once Shutdown has been called.
var ErrShutdown = errors.New("seqwait: shut down")
