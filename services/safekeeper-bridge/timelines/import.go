package timelines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/replication"
)

// importWithRetry runs importOnce until it succeeds, fails for good
// (wrapped in ErrImport), or ctx ends. It returns the backup's start LSN.
func (tl *timeline) importWithRetry(ctx context.Context) (lsn.LSN, error) {
	backoff := tl.m.opts.ImportMinBackoff
	for {
		start, err := tl.importOnce(ctx)
		if err == nil {
			return start, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if importPermanent(err) {
			return 0, fmt.Errorf("%w: %w", ErrImport, err)
		}
		tl.mu.Lock()
		tl.importErr = err
		tl.mu.Unlock()
		tl.log.Warn("base backup import failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, tl.m.opts.ImportMaxBackoff)
	}
}

// importPermanent reports errors that a retry cannot fix.
func importPermanent(err error) bool {
	if errors.Is(err, ErrUnsupported) || errors.Is(err, replication.ErrConfig) {
		return true
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
			return true
		}
	}
	var pgErr *pgconn.PgError
	// 28xxx: invalid authorization; 42501: insufficient privilege.
	return errors.As(err, &pgErr) && (len(pgErr.Code) == 5 && pgErr.Code[:2] == "28" || pgErr.Code == "42501")
}

// importOnce creates the slot (so that the primary keeps the WAL from the
// backup's start), takes a base backup with BASE_BACKUP, stages base.tar in
// a file of the state directory, and streams it into the pageserver's
// ImportBaseBackup. It returns the backup's start LSN, from which the
// replication client then streams.
//
// The tar is staged on disk, not sent while it arrives, because the import
// header must carry the backup's end LSN and PostgreSQL reports it only
// after the last tar byte. Memory stays bounded either way: one CopyData
// message (≤ 32 KiB) or one chunk at a time.
func (tl *timeline) importOnce(ctx context.Context) (lsn.LSN, error) {
	a := tl.attachment()
	conn, err := replication.Connect(ctx, a.PrimaryConnInfo, "strata-bridge-import")
	if err != nil {
		return 0, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := pglogrepl.IdentifySystem(ctx, conn); err != nil {
		return 0, fmt.Errorf("timelines: IDENTIFY_SYSTEM: %w", err)
	}
	restart, created, err := replication.EnsureSlot(ctx, conn, a.SlotName)
	if err != nil {
		return 0, err
	}
	tl.log.Info("base backup: slot ready", "slot", a.SlotName, "created", created, "restart_lsn", restart)

	res, err := pglogrepl.StartBaseBackup(ctx, conn, pglogrepl.BaseBackupOptions{Label: "strata import " + a.TimelineID, Fast: true, NoWait: true})
	if err != nil {
		return 0, fmt.Errorf("timelines: BASE_BACKUP: %w", err)
	}
	start := lsn.LSN(res.LSN)
	if len(res.Tablespaces) > 0 {
		return 0, fmt.Errorf("%w: the primary has %d user tablespace(s); only pg_default and pg_global can be imported", ErrUnsupported, len(res.Tablespaces))
	}
	if restart.IsValid() && restart > start {
		return 0, fmt.Errorf("%w: slot %s has restart_lsn %s past the backup's start %s", ErrImport, a.SlotName, restart, start)
	}
	if err := pglogrepl.NextTableSpace(ctx, conn); err != nil {
		return 0, fmt.Errorf("timelines: BASE_BACKUP: %w", err)
	}

	dir := filepath.Join(tl.m.opts.StateDir, a.TenantID)
	f, err := os.CreateTemp(dir, "."+a.TimelineID+".base.tar.tmp-*")
	if err != nil {
		return 0, fmt.Errorf("timelines: staging the base backup: %w", err)
	}
	defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
	size, err := receiveBaseTar(ctx, conn, f)
	if err != nil {
		return 0, err
	}
	endRes, err := pglogrepl.FinishBaseBackup(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("timelines: BASE_BACKUP end: %w", err)
	}
	end := lsn.LSN(endRes.LSN)
	tl.log.Info("base backup taken", "start_lsn", start, "end_lsn", end, "tar_bytes", size)

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	info, err := tl.sendImport(ctx, a, start, end, f)
	if err != nil {
		return 0, err
	}
	tl.log.Info("base backup imported", "start_lsn", start, "end_lsn", end, "pageserver_last_record_lsn", lsn.LSN(info.GetLastRecordLsn()))
	return start, nil
}

// receiveBaseTar copies base.tar from the BASE_BACKUP copy stream
// (PostgreSQL 15 format: 'n' new archive, 'd' data, 'p' progress,
// 'm' manifest) into w, up to CopyDone.
func receiveBaseTar(ctx context.Context, conn *pgconn.PgConn, w io.Writer) (int64, error) {
	var size int64
	archive := ""
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return size, fmt.Errorf("timelines: receiving the base backup: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case 'n':
				name, _, _ := bytes.Cut(msg.Data[1:], []byte{0})
				archive = string(name)
				if archive != "base.tar" {
					return size, fmt.Errorf("%w: base backup archive %q (only base.tar: no user tablespaces, no compression)", ErrUnsupported, archive)
				}
			case 'd':
				if archive == "" {
					return size, fmt.Errorf("timelines: base backup data before any archive header")
				}
				n, err := w.Write(msg.Data[1:])
				size += int64(n)
				if err != nil {
					return size, fmt.Errorf("timelines: staging the base backup: %w", err)
				}
			case 'p', 'm':
				// Progress and manifest are not requested; ignore.
			default:
				return size, fmt.Errorf("timelines: unexpected base backup message type %q", msg.Data[0])
			}
		case *pgproto3.CopyDone:
			if archive == "" {
				return size, fmt.Errorf("timelines: base backup without base.tar")
			}
			return size, nil
		case *pgproto3.NoticeResponse:
		case *pgproto3.ErrorResponse:
			return size, fmt.Errorf("timelines: BASE_BACKUP: %w", pgconn.ErrorResponseToPgError(msg))
		default:
			return size, fmt.Errorf("timelines: unexpected message %T during BASE_BACKUP", msg)
		}
	}
}

// sendImport streams the staged tar into ManagementService.ImportBaseBackup.
func (tl *timeline) sendImport(ctx context.Context, a Attachment, start, end lsn.LSN, tar io.Reader) (*pb.TimelineInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := tl.m.mgmt.ImportBaseBackup(ctx)
	if err != nil {
		return nil, fmt.Errorf("timelines: ImportBaseBackup: %w", err)
	}
	header := &pb.ImportBaseBackupRequest{Part: &pb.ImportBaseBackupRequest_Header{Header: &pb.ImportBaseBackupRequest_ImportHeader{
		TenantId: a.TenantID, TimelineId: a.TimelineID, StartLsn: uint64(start), EndLsn: uint64(end), PgVersion: 15,
	}}}
	closeAndRecv := func() (*pb.TimelineInfo, error) {
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return nil, fmt.Errorf("timelines: ImportBaseBackup: %w", err)
		}
		return resp.GetTimeline(), nil
	}
	if err := stream.Send(header); err != nil {
		if errors.Is(err, io.EOF) { // the server ended the call: its status says why
			return closeAndRecv()
		}
		return nil, fmt.Errorf("timelines: ImportBaseBackup: %w", err)
	}
	buf := make([]byte, tl.m.opts.ImportChunkBytes)
	for {
		n, rerr := io.ReadFull(tar, buf)
		if n > 0 {
			// Send marshals before returning, so buf may be reused.
			if err := stream.Send(&pb.ImportBaseBackupRequest{Part: &pb.ImportBaseBackupRequest_BaseTarChunk{BaseTarChunk: buf[:n]}}); err != nil {
				if errors.Is(err, io.EOF) {
					return closeAndRecv()
				}
				return nil, fmt.Errorf("timelines: ImportBaseBackup: %w", err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("timelines: reading the staged base backup: %w", rerr)
		}
	}
	return closeAndRecv()
}
