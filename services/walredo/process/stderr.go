package process

import (
	"bufio"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/stratadb/strata/internal/lsn"
)

// stderrKeep is how many recent stderr lines a child remembers, enough for a
// PANIC with its DETAIL, CONTEXT and the exit notice.
const stderrKeep = 64

// stderrTail logs a child's stderr line by line and keeps the last lines,
// numbered, so a crash can be explained with what the child said after the
// failing request began.
type stderrTail struct {
	mu    sync.Mutex
	lines []string // ring of the last stderrKeep lines
	total uint64   // lines seen so far
	done  chan struct{}
}

func newStderrTail(r io.ReadCloser, log *slog.Logger) *stderrTail {
	t := &stderrTail{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			line := sc.Text()
			// Caught ERRORs are logged by PostgreSQL too; the reply carries
			// them, so they are not warnings here.
			switch {
			case strings.Contains(line, "PANIC:") || strings.Contains(line, "FATAL:"):
				log.Error("walredo child", "stderr", line)
			case strings.Contains(line, "WARNING:"):
				log.Warn("walredo child", "stderr", line)
			default:
				log.Debug("walredo child", "stderr", line)
			}
			t.mu.Lock()
			if len(t.lines) < stderrKeep {
				t.lines = append(t.lines, line)
			} else {
				t.lines[t.total%stderrKeep] = line
			}
			t.total++
			t.mu.Unlock()
		}
	}()
	return t
}

func (t *stderrTail) wait() { <-t.done }

// mark returns the number of lines seen so far.
func (t *stderrTail) mark() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// since returns the remembered lines after mark, oldest first.
func (t *stderrTail) since(mark uint64) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	first := mark
	if t.total > stderrKeep && first < t.total-stderrKeep {
		first = t.total - stderrKeep
	}
	out := make([]string, 0, t.total-first)
	for i := first; i < t.total; i++ {
		if t.total <= stderrKeep {
			out = append(out, t.lines[i])
		} else {
			out = append(out, t.lines[i%stderrKeep])
		}
	}
	return out
}

var recordLSNRe = regexp.MustCompile(`applying record at ([0-9A-Fa-f]+/[0-9A-Fa-f]+)`)

// lastRecordLSN finds the record the child named in its last error context.
func lastRecordLSN(lines []string) lsn.LSN {
	for i := len(lines) - 1; i >= 0; i-- {
		if m := recordLSNRe.FindStringSubmatch(lines[i]); m != nil {
			if l, err := lsn.Parse(m[1]); err == nil {
				return l
			}
		}
	}
	return lsn.Invalid
}
