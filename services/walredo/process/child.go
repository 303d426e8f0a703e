package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/pgext"
	"github.com/stratadb/strata/services/walredo/redo"
)

// ChildOptions are per-child settings.
type ChildOptions struct {
	// WALLogHints must be data_checksums || wal_log_hints of the source
	// cluster for page LSNs to match exactly (see walredo-feasibility.md).
	WALLogHints bool
	// Name identifies the child in logs (e.g. the tenant id).
	Name string
}

// Child is one running postgres --single backend serving redo requests.
type Child struct {
	tmpl    *Template
	log     *slog.Logger
	cmd     *exec.Cmd
	dir     string // the child's own directory (holds data/)
	stdin   *os.File
	stdout  *os.File
	w       *bufio.Writer
	r       *bufio.Reader
	stderr  *stderrTail
	reqID   uint32
	hdr     [frameHeaderLen]byte
	scratch [applyHeaderLen]byte

	dead      atomic.Bool
	killOnce  sync.Once
	closeOnce sync.Once
	exited    chan struct{} // closed after the process exited and stderr drained
	exitErr   error         // cmd.Wait's result; read after exited is closed
}

// Start copies the template and starts a child, returning once it has
// completed its handshake.
func Start(ctx context.Context, tmpl *Template, opts ChildOptions) (*Child, error) {
	cfg := tmpl.cfg
	dir, err := os.MkdirTemp(filepath.Join(cfg.WorkDir, "children"), "child-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	data := filepath.Join(dir, "data")
	if err := copyTree(tmpl.dataDir, data, tmpl.user); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: copy template: %v", ErrStart, err)
	}
	c, err := startIn(ctx, tmpl, opts, dir, data)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func startIn(ctx context.Context, tmpl *Template, opts ChildOptions, dir, data string) (*Child, error) {
	cfg := tmpl.cfg
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	postgres := filepath.Join(cfg.BinDir, "postgres")
	args := append([]string{"-c", `ulimit -c 0 && exec "$0" "$@"`, postgres, "--single", "-D", data},
		append(childSettings(opts.WALLogHints), "postgres")...)
	// Not CommandContext: the child outlives the start-up context.
	cmd := exec.Command("/bin/sh", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = tmpl.user.sysProcAttr()
	cmd.Env = childEnv()
	cmd.Dir = dir
	log := cfg.Logger.With("child", opts.Name)
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	c := &Child{
		tmpl:   tmpl,
		log:    log.With("pid", cmd.Process.Pid),
		cmd:    cmd,
		dir:    dir,
		stdin:  inW,
		stdout: outR,
		w:      bufio.NewWriterSize(inW, 64<<10),
		r:      bufio.NewReaderSize(outR, 64<<10),
		exited: make(chan struct{}),
	}
	c.stderr = newStderrTail(errR, c.log)
	go c.wait()

	if err := c.handshake(ctx); err != nil {
		c.Kill()
		<-c.exited
		c.stdin.Close()
		c.stdout.Close()
		return nil, fmt.Errorf("%w: %w; stderr: %q", ErrStart, err, c.stderr.since(0))
	}
	c.log.Debug("walredo child started")
	return c, nil
}

// wait reaps the process; owned by the child, ends when the process exits.
func (c *Child) wait() {
	err := c.cmd.Wait()
	c.stderr.wait() // stderr hits EOF once the process is gone
	c.exitErr = err
	c.dead.Store(true)
	close(c.exited)
}

func (c *Child) handshake(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.tmpl.cfg.StartTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, c.Kill)
	defer stop()

	if _, err := io.WriteString(c.w, "SELECT strata_walredo_main();\n"); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	// Skip the single-user banner and prompt until the magic.
	magic := []byte(handshakeMagic)
	matched, scanned := 0, 0
	for matched < len(magic) {
		b, err := c.r.ReadByte()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("no handshake before the start deadline (StartTimeout %v): %w", c.tmpl.cfg.StartTimeout, ctx.Err())
			}
			return fmt.Errorf("reading handshake: %v", err)
		}
		scanned++
		if scanned > maxHandshakeScan {
			return errors.New("no handshake magic in the child's output")
		}
		switch {
		case b == magic[matched]:
			matched++
		case b == magic[0]:
			matched = 1
		default:
			matched = 0
		}
	}
	var fixed [12]byte
	if _, err := io.ReadFull(c.r, fixed[:]); err != nil {
		return fmt.Errorf("reading handshake: %v", err)
	}
	version := binary.LittleEndian.Uint32(fixed[0:])
	pgVersion := binary.LittleEndian.Uint32(fixed[4:])
	idLen := binary.LittleEndian.Uint32(fixed[8:])
	if idLen > maxBuildIDLen {
		return fmt.Errorf("%w: handshake build id of %d bytes", ErrProtocol, idLen)
	}
	id := make([]byte, idLen)
	if _, err := io.ReadFull(c.r, id); err != nil {
		return fmt.Errorf("reading handshake: %v", err)
	}
	switch {
	case version != protocolVersion:
		return fmt.Errorf("%w: child speaks protocol %d, we speak %d; rebuild the extension", ErrStaleExtension, version, protocolVersion)
	case string(id) != pgext.BuildID():
		return fmt.Errorf("%w: child's build id %q, this binary expects %q; rebuild the extension (make build)", ErrStaleExtension, id, pgext.BuildID())
	case pgVersion/10000 != pgtypes.PGMajorVersion:
		return fmt.Errorf("%w: extension built for PostgreSQL %d, want %d", ErrStaleExtension, pgVersion/10000, pgtypes.PGMajorVersion)
	}
	return nil
}

// PID returns the child's process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Alive reports whether the child can still take requests.
func (c *Child) Alive() bool { return !c.dead.Load() }

// Kill stops the child with SIGKILL. Safe to call at any time, repeatedly.
func (c *Child) Kill() {
	c.killOnce.Do(func() {
		c.dead.Store(true)
		_ = c.cmd.Process.Kill()
	})
}

// Close ends the child: EOF on stdin lets it exit cleanly; after grace it is
// killed. Its data dir is removed. Idempotent.
func (c *Child) Close(grace time.Duration) error {
	var err error
	c.closeOnce.Do(func() {
		c.dead.Store(true)
		_ = c.stdin.Close()
		t := time.NewTimer(grace)
		select {
		case <-c.exited:
		case <-t.C:
			c.log.Warn("walredo child did not exit on EOF; killing it", "grace", grace)
			c.Kill()
			<-c.exited
		}
		t.Stop()
		c.stdout.Close()
		err = os.RemoveAll(c.dir)
	})
	return err
}

// Apply rebuilds the block tag from base (nil = zero page) and records into
// out (BLCKSZ bytes). A record refused by PostgreSQL yields a
// *redo.RecordError wrapping redo.ErrRecordFailed and the child keeps
// serving; a crash yields one wrapping redo.ErrChildCrashed; a deadline
// yields redo.ErrTimeout. After either of the latter the child is dead.
func (c *Child) Apply(ctx context.Context, tag pgtypes.BufferTag, base []byte, records []redo.Record, out []byte) error {
	if len(out) != pgtypes.BLCKSZ || (base != nil && len(base) != pgtypes.BLCKSZ) {
		return fmt.Errorf("%w: page buffers must be %d bytes", redo.ErrInvalidRequest, pgtypes.BLCKSZ)
	}
	size := applyHeaderLen
	flags := uint32(0)
	if base != nil {
		size += pgtypes.BLCKSZ
		flags |= applyHasBase
	}
	for _, r := range records {
		size += recordHdrLen + len(r.Raw)
	}
	if size > maxPayload {
		return fmt.Errorf("%w: request of %d bytes exceeds the %d-byte limit", redo.ErrInvalidRequest, size, maxPayload)
	}
	return c.roundTrip(ctx, reqApply, size, func(w *bufio.Writer) {
		h := c.scratch[:]
		le := binary.LittleEndian
		le.PutUint32(h[0:], uint32(tag.Rel.SpcNode))
		le.PutUint32(h[4:], uint32(tag.Rel.DbNode))
		le.PutUint32(h[8:], uint32(tag.Rel.RelNode))
		le.PutUint32(h[12:], uint32(tag.Rel.ForkNum))
		le.PutUint32(h[16:], tag.BlockNum)
		le.PutUint32(h[20:], flags)
		le.PutUint32(h[24:], uint32(len(records)))
		w.Write(h)
		if base != nil {
			w.Write(base)
		}
		for _, r := range records {
			le.PutUint64(h[0:], uint64(r.Start))
			le.PutUint64(h[8:], uint64(r.End))
			le.PutUint32(h[16:], uint32(len(r.Raw)))
			w.Write(h[:recordHdrLen])
			w.Write(r.Raw)
		}
	}, replyPage, out)
}

// Mask copies page to out and applies rmgr rmid's rm_mask to it, as
// wal_consistency_checking does before comparing pages.
func (c *Child) Mask(ctx context.Context, rmid uint8, blkno uint32, page, out []byte) error {
	if len(out) != pgtypes.BLCKSZ || len(page) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: page buffers must be %d bytes", redo.ErrInvalidRequest, pgtypes.BLCKSZ)
	}
	return c.roundTrip(ctx, reqMask, 8+pgtypes.BLCKSZ, func(w *bufio.Writer) {
		h := c.scratch[:8]
		binary.LittleEndian.PutUint32(h[0:], uint32(rmid))
		binary.LittleEndian.PutUint32(h[4:], blkno)
		w.Write(h)
		w.Write(page)
	}, replyPage, out)
}

// Ping checks that the child answers.
func (c *Child) Ping(ctx context.Context) error {
	var payload [8]byte
	binary.LittleEndian.PutUint64(payload[:], uint64(time.Now().UnixNano()))
	var echo [8]byte
	if err := c.roundTrip(ctx, reqPing, len(payload), func(w *bufio.Writer) { w.Write(payload[:]) }, replyPong, echo[:]); err != nil {
		return err
	}
	if echo != payload {
		c.Kill()
		return fmt.Errorf("%w: ping echoed %x, sent %x", ErrProtocol, echo, payload)
	}
	return nil
}

// Sleep makes the child hold a request for d (at most 10 minutes). It
// exists to test deadlines; it is harmless otherwise.
func (c *Child) Sleep(ctx context.Context, d time.Duration) error {
	var payload [4]byte
	binary.LittleEndian.PutUint32(payload[:], uint32(min(d, 10*time.Minute)/time.Millisecond))
	return c.roundTrip(ctx, reqSleep, len(payload), func(w *bufio.Writer) { w.Write(payload[:]) }, replyDone, nil)
}

// roundTrip sends one request and reads its reply into out (whose length
// must equal the reply payload's for replies other than errors).
func (c *Child) roundTrip(ctx context.Context, typ byte, size int, body func(*bufio.Writer), want byte, out []byte) error {
	if c.dead.Load() {
		return ErrChildGone
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, c.tmpl.cfg.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, c.Kill)
	defer stop()

	c.reqID++
	id := c.reqID
	mark := c.stderr.mark()
	c.hdr[0] = typ
	binary.LittleEndian.PutUint32(c.hdr[1:], id)
	binary.LittleEndian.PutUint32(c.hdr[5:], uint32(size))
	c.w.Write(c.hdr[:])
	body(c.w)
	err := c.w.Flush()
	if err == nil {
		err = c.readReply(id, want, out)
	}
	if err == nil {
		return nil
	}
	var recErr *redo.RecordError
	if errors.As(err, &recErr) || errors.Is(err, redo.ErrInvalidRequest) {
		return err // the child answered; it is still in sync
	}
	// Anything else leaves the stream out of sync: the child is done for.
	c.Kill()
	<-c.exited
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: child pid %d killed after request %d (%c) ran past its deadline", redo.ErrTimeout, c.PID(), id, typ)
		}
		return fmt.Errorf("walredo request %d canceled, child pid %d killed: %w", id, c.PID(), ctxErr)
	}
	if errors.Is(err, ErrProtocol) {
		return err
	}
	last := c.stderr.since(mark)
	return &redo.RecordError{
		LSN:  lastRecordLSN(last),
		Msg:  fmt.Sprintf("child pid %d exited (%v) during request %d: %s", c.PID(), c.exitErr, id, firstSevere(last)),
		Kind: redo.ErrChildCrashed,
	}
}

func (c *Child) readReply(id uint32, want byte, out []byte) error {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return err
	}
	typ := hdr[0]
	gotID := binary.LittleEndian.Uint32(hdr[1:])
	size := binary.LittleEndian.Uint32(hdr[5:])
	if gotID != id {
		return fmt.Errorf("%w: reply to request %d, expected %d", ErrProtocol, gotID, id)
	}
	switch {
	case typ == replyError:
		if size < 8 || size > 1<<20 {
			return fmt.Errorf("%w: error reply of %d bytes", ErrProtocol, size)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return err
		}
		return &redo.RecordError{
			LSN:  lsn.LSN(binary.LittleEndian.Uint64(buf)),
			Msg:  string(buf[8:]),
			Kind: redo.ErrRecordFailed,
		}
	case typ != want:
		return fmt.Errorf("%w: reply type %q to a request expecting %q", ErrProtocol, typ, want)
	case int(size) != len(out):
		return fmt.Errorf("%w: reply %q of %d bytes, expected %d", ErrProtocol, typ, size, len(out))
	}
	_, err := io.ReadFull(c.r, out)
	return err
}

// firstSevere picks the child's PANIC/FATAL/ERROR line out of its last words.
func firstSevere(lines []string) string {
	for _, sev := range [][]byte{[]byte("PANIC:"), []byte("FATAL:"), []byte("ERROR:")} {
		for _, l := range lines {
			if bytes.Contains([]byte(l), sev) {
				return l
			}
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return "no output on stderr"
}
