package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Why a template: initdb costs about 1 s of CPU when the machine is idle
// and measured 17-28 s with eight parallel clusters on a loaded 2-core
// machine; copying an initdb'd directory costs a fraction of that. The
// first Start on a machine (per template key) runs initdb into
// <base>/template-<key>/data under a file lock and renames it into place
// complete; every later Start copies it and gives the copy a fresh system
// identifier, so clusters stay distinguishable (IDENTIFY_SYSTEM, the bridge).
// The template is never started.

// templateFormat is bumped whenever what a template contains changes.
const templateFormat = "1"

// templateKey names the template for these binaries, this owner and these
// initdb switches. The postgres binary's size and mtime catch a reinstall
// of the same version string.
func templateKey(binDir, version string, owner osUser, checksums bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "format=%s\nbin=%s\nversion=%s\nuser=%s\nchecksums=%t\n", templateFormat, binDir, version, owner.name, checksums)
	if fi, err := os.Stat(filepath.Join(binDir, "postgres")); err == nil {
		fmt.Fprintf(h, "size=%d\nmtime=%d\n", fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// initdbArgs are the arguments of every initdb pgtest runs, before
// Options.InitdbArgs.
func initdbArgs(dataDir, user string, checksums bool) []string {
	args := []string{"-D", dataDir, "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8", "--locale=C"}
	if checksums {
		args = append(args, "--data-checksums")
	}
	return args
}

// ensureTemplate returns the data directory of the template for key,
// creating it with initdb when it does not exist yet.
// built reports whether this call ran initdb.
func ensureTemplate(ctx context.Context, base, binDir, key string, owner osUser, checksums bool) (dataDir string, built bool, err error) {
	dir := filepath.Join(base, "template-"+key)
	dataDir = filepath.Join(dir, "data")
	if _, err := os.Stat(dir); err == nil {
		return dataDir, false, nil // renamed into place only when complete
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", false, fmt.Errorf("pgtest: template: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		return dataDir, false, nil // built by another process while we waited
	}
	tmp, err := os.MkdirTemp(base, "tmpl-tmp-")
	if err != nil {
		return "", false, fmt.Errorf("pgtest: template: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := owner.chown(tmp); err != nil {
		return "", false, fmt.Errorf("pgtest: template: %w", err)
	}
	args := initdbArgs(filepath.Join(tmp, "data"), owner.name, checksums)
	if out, err := newCommand(ctx, binDir, tmp, owner, nil, "initdb", args...).CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("%w: initdb %s: %v\n%s", ErrStart, strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, fmt.Errorf("pgtest: template: %w", err)
	}
	return dataDir, true, nil
}

// copyTree copies the directory src to dst (which must not exist), giving
// everything to owner. A fresh data directory holds only directories and
// regular files; anything else is refused rather than half-copied.
func copyTree(src, dst string, owner osUser) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("pgtest: template: %s is neither a directory nor a regular file", path)
		}
		return owner.chown(target)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range on Linux
		_ = out.Close()
		return err
	}
	return out.Close()
}

// Byte layouts used to change a cluster's system identifier; see
// /work/shared/reference/pg15-formats.md §5.1 (ControlFileData) and the
// long WAL page header table.
const (
	controlCRCOffset   = 288 // crc covers bytes [0, 288)
	controlSysIDOffset = 0
	walMagic15         = 0xD110
	walLongHeaderFlag  = 0x0002 // XLP_LONG_HEADER in xlp_info
	walSysIDOffset     = 24     // xlp_sysid in XLogLongPageHeaderData
)

var walSegmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// newSystemIdentifier builds an identifier the way initdb does (seconds in
// the high half, microseconds above 12 low bits) with random low bits
// instead of the pid, so parallel Starts do not collide.
func newSystemIdentifier() uint64 {
	now := time.Now()
	var r [2]byte
	_, _ = rand.Read(r[:])
	return uint64(now.Unix())<<32 | uint64(now.Nanosecond()/1000)<<12 | uint64(binary.LittleEndian.Uint16(r[:])&0xFFF)
}

// setSystemIdentifier rewrites the system identifier of a stopped, copied
// cluster: in pg_control (recomputing its CRC) and in the long header of
// every WAL segment, where startup checks it against pg_control. Each
// rewrite first checks the bytes it replaces, so a layout mismatch is an
// error, never a silently broken cluster.
func setSystemIdentifier(dataDir string, id uint64) error {
	order := binary.NativeEndian // PostgreSQL writes host byte order
	crcTable := crc32.MakeTable(crc32.Castagnoli)
	controlPath := filepath.Join(dataDir, "global", "pg_control")
	control, err := os.ReadFile(controlPath)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if len(control) < controlCRCOffset+4 ||
		crc32.Checksum(control[:controlCRCOffset], crcTable) != order.Uint32(control[controlCRCOffset:]) {
		return fmt.Errorf("pgtest: %s: unexpected layout or bad CRC; cannot set the system identifier", controlPath)
	}
	oldID := order.Uint64(control[controlSysIDOffset:])
	order.PutUint64(control[controlSysIDOffset:], id)
	order.PutUint32(control[controlCRCOffset:], crc32.Checksum(control[:controlCRCOffset], crcTable))

	walDir := filepath.Join(dataDir, "pg_wal")
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !walSegmentName.MatchString(e.Name()) {
			continue
		}
		if err := patchSegmentSysID(filepath.Join(walDir, e.Name()), oldID, id); err != nil {
			return err
		}
	}
	// pg_control last: a failure above leaves the copy consistently old.
	if err := os.WriteFile(controlPath, control, 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

func patchSegmentSysID(path string, oldID, id uint64) error {
	order := binary.NativeEndian
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer f.Close()
	var hdr [walSysIDOffset + 8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("pgtest: %s: %w", path, err)
	}
	magic, info := order.Uint16(hdr[0:]), order.Uint16(hdr[2:])
	if magic != walMagic15 || info&walLongHeaderFlag == 0 || order.Uint64(hdr[walSysIDOffset:]) != oldID {
		return fmt.Errorf("pgtest: %s: first page is not a PostgreSQL 15 long header of system %d (magic %#x, info %#x)",
			path, oldID, magic, info)
	}
	var b [8]byte
	order.PutUint64(b[:], id)
	if _, err := f.WriteAt(b[:], walSysIDOffset); err != nil {
		return fmt.Errorf("pgtest: %s: %w", path, err)
	}
	return f.Close()
}

// removeStaleTemplateTemps removes half-built templates of processes that
// died during initdb (the builder holds the lock for at most a few minutes).
func removeStaleTemplateTemps(base string, olderThan time.Duration) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "tmpl-tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > olderThan {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}
