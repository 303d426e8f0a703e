package localstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// followPoll is how often Logs checks a followed file for new bytes.
const followPoll = 200 * time.Millisecond

// Logs copies svc's log file to w. With follow it keeps copying what is
// appended until ctx is cancelled (then it returns nil), as tail -f.
func (s *Stack) Logs(ctx context.Context, svc string, w io.Writer, follow bool) error {
	if _, err := LookupService(svc); err != nil {
		return err
	}
	path := s.LogPath(svc)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("localstack: %w (has %s ever been started? `stratactl start`)", err, svc)
	}
	defer f.Close()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("localstack: %w", err)
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}
