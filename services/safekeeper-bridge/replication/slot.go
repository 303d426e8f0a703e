package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stratadb/strata/internal/lsn"
)

// Connect opens a physical replication connection to the primary described
// by connString. Errors never quote the connection string (it may hold a
// password).
func Connect(ctx context.Context, connString, applicationName string) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse the primary's connection string", ErrConfig)
	}
	pc.RuntimeParams["replication"] = "true"
	if applicationName != "" {
		pc.RuntimeParams["application_name"] = applicationName
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, pc)
	if err != nil {
		return nil, fmt.Errorf("replication: connecting to the primary: %w", err)
	}
	return conn, nil
}

// ValidSlotName reports whether name is a slot name the bridge accepts.
func ValidSlotName(name string) bool { return slotNameRE.MatchString(name) }

// EnsureSlot creates the permanent physical slot name (reserving WAL at
// once) unless it exists, and returns its restart_lsn. An existing logical
// slot of that name is ErrConfig. Used before BASE_BACKUP so that the
// primary keeps the WAL from the backup's start.
func EnsureSlot(ctx context.Context, conn *pgconn.PgConn, name string) (restartLSN lsn.LSN, created bool, err error) {
	if !ValidSlotName(name) {
		return 0, false, fmt.Errorf("%w: slot name %q must be 1-63 characters of a-z, 0-9 and _", ErrConfig, name)
	}
	slot, err := readSlot(ctx, conn, name)
	if err != nil {
		return 0, false, err
	}
	if slot.exists {
		if !slot.physical {
			return 0, false, fmt.Errorf("%w: slot %s exists but is not a physical slot", ErrConfig, name)
		}
		return slot.restartLSN, false, nil
	}
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.PhysicalReplication, SnapshotAction: "RESERVE_WAL"}); err != nil {
		return 0, false, fmt.Errorf("replication: creating slot %s: %w", name, err)
	}
	if slot, err = readSlot(ctx, conn, name); err != nil {
		return 0, false, err
	}
	return slot.restartLSN, true, nil
}

// DropSlot drops the physical slot name, waiting for a walsender that still
// uses it to go away. A slot that does not exist is not an error.
func DropSlot(ctx context.Context, connString, name string) error {
	conn, err := Connect(ctx, connString, "strata-bridge")
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	slot, err := readSlot(ctx, conn, name)
	if err != nil || !slot.exists {
		return err
	}
	if err := pglogrepl.DropReplicationSlot(ctx, conn, name, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
		return fmt.Errorf("replication: dropping slot %s: %w", name, err)
	}
	return nil
}
