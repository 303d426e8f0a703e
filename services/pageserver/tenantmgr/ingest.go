package tenantmgr

import (
	"context"
	"fmt"
)

type ingestSession struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// AcquireIngest makes the caller the timeline's only WAL ingest session.
// A running session is replaced: its context is cancelled with
// ErrIngestReplaced and AcquireIngest waits until it released. The
// returned context is cancelled when ctx is, or when a newer session (or
// the timeline's deletion) takes over; release must be called once the
// caller stopped feeding WAL.
func (tl *Timeline) AcquireIngest(ctx context.Context) (sessionCtx context.Context, release func(), err error) {
	for {
		tl.ingestMu.Lock()
		prev := tl.ingest
		if prev == nil {
			sctx, cancel := context.WithCancelCause(ctx)
			s := &ingestSession{cancel: cancel, done: make(chan struct{})}
			tl.ingest = s
			tl.ingestMu.Unlock()
			release := func() {
				cancel(nil)
				tl.ingestMu.Lock()
				if tl.ingest == s {
					tl.ingest = nil
				}
				tl.ingestMu.Unlock()
				close(s.done)
			}
			return sctx, release, nil
		}
		tl.ingestMu.Unlock()
		prev.cancel(ErrIngestReplaced)
		select {
		case <-prev.done:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("tenantmgr: waiting for the previous ingest session of timeline %s to stop: %w", tl.id, context.Cause(ctx))
		}
	}
}
