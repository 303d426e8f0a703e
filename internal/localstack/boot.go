package localstack

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratadb/strata/internal/osuser"

	"github.com/stratadb/strata/internal/pgtypes"
)

// DefaultBootUser is the OS user PostgreSQL runs as when stratactl runs as
// root (PostgreSQL refuses root); internal/pgtest uses the same user.
const DefaultBootUser = "strata-pg"

// BootOptions configures BootPostgres.
type BootOptions struct {
	// DataDir is an extracted fullbackup.
	DataDir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// PGBinDir: "" means $STRATA_PG_BIN, else `pg_config --bindir`.
	PGBinDir string
	// RunAsUser is the OS user when running as root; "" means
	// DefaultBootUser (created with useradd if missing).
	RunAsUser string
	// StartTimeout bounds pg_ctl's wait; 0 means 60 s.
	StartTimeout time.Duration
}

// BootResult says how to reach the booted server.
type BootResult struct {
	DataDir    string `json:"data_dir"`
	Port       int    `json:"port"`
	User       string `json:"user"`
	OSUser     string `json:"os_user"`
	LogFile    string `json:"log_file"`
	ConnString string `json:"conn_string"`
	// StopCommand is the shell command that stops the server.
	StopCommand string `json:"stop_command"`
}

// PGBinDir returns PostgreSQL's bin directory: dir if set, else
// $STRATA_PG_BIN, else `pg_config --bindir`.
func PGBinDir(ctx context.Context, dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if env := os.Getenv("STRATA_PG_BIN"); env != "" {
		return env, nil
	}
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("%w: cannot find PostgreSQL 15: pg_config --bindir: %v (install postgresql-15, or set STRATA_PG_BIN)", ErrBoot, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// BootPostgres starts a vanilla PostgreSQL on an extracted fullbackup in
// opts.DataDir, listening on 127.0.0.1:opts.Port, and returns once it
// accepts connections (pg_ctl -w). The server keeps running after the
// caller exits; BootResult.StopCommand stops it.
func BootPostgres(ctx context.Context, opts BootOptions) (*BootResult, error) {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBoot, err)
	}
	binDir, err := PGBinDir(ctx, opts.PGBinDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("%w: %s is not a PostgreSQL data directory: %v", ErrBoot, dataDir, err)
	}
	// A backup never carries a running server's pid file; refuse to boot
	// on a directory a server may still be using.
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err == nil {
		return nil, fmt.Errorf("%w: %s/postmaster.pid exists: is a server already running there?", ErrBoot, dataDir)
	}

	res := &BootResult{DataDir: dataDir, Port: opts.Port, LogFile: filepath.Join(dataDir, "postgres.log")}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		name := opts.RunAsUser
		if name == "" {
			name = DefaultBootUser
		}
		uid, gid, err := lookupOrCreateUser(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := reachable(dataDir); err != nil {
			return nil, fmt.Errorf("%w: PostgreSQL runs as user %s, who cannot reach %s: %v (choose a --dir under /tmp or /var/tmp)", ErrBoot, name, dataDir, err)
		}
		if err := chownTree(dataDir, uid, gid); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBoot, err)
		}
		cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
		res.OSUser = name
	} else if u, err := user.Current(); err == nil {
		res.OSUser = u.Username
	}
	res.User = bootstrapSuperuser(dataDir)
	if res.User == "" {
		res.User = res.OSUser
	}

	// Unix socket in the data directory when its path fits sun_path (107
	// bytes); TCP only otherwise.
	socketDir := dataDir
	if len(socketDir)+len("/.s.PGSQL.65535") > 107 {
		socketDir = ""
	}
	pgOpts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='%s'", opts.Port, socketDir)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_ctl"), "-D", dataDir, "-l", res.LogFile,
		"-w", "-t", strconv.Itoa(int(opts.StartTimeout.Seconds())), "-o", pgOpts, "start")
	cmd.Dir = dataDir
	// Own session: the server must survive stratactl and its terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: pg_ctl start: %v: %s\nserver log %s:\n%s", ErrBoot, err, bytes.TrimSpace(out), res.LogFile, logTail(res.LogFile, 0, 15))
	}
	res.ConnString = fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable", opts.Port, res.User)
	res.StopCommand = fmt.Sprintf("%s -D %s stop", filepath.Join(binDir, "pg_ctl"), dataDir)
	if cred != nil {
		res.StopCommand = fmt.Sprintf("su -s /bin/sh %s -c '%s'", res.OSUser, res.StopCommand)
	}
	return res, nil
}

// reachable checks that every parent of dir can be traversed by others,
// which a different OS user needs.
func reachable(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s has mode %s", p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func chownTree(root string, uid, gid uint32) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}

// lookupOrCreateUser returns the uid and gid of the system user name,
// created if missing (internal/osuser serializes creation machine-wide).
func lookupOrCreateUser(ctx context.Context, name string) (uid, gid uint32, err error) {
	u, err := osuser.Ensure(ctx, name)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrBoot, err)
	}
	return u.UID, u.GID, nil
}

// pg_authid's relfilenode in the global tablespace (a mapped catalog whose
// file keeps its OID as name) and the bootstrap superuser's OID.
const (
	pgAuthidFile          = "global/1260"
	bootstrapSuperuserOID = 10
	heapXmaxInvalidFlag   = 0x0800
	nameDataLen           = 64
)

// bootstrapSuperuser returns the name of the role with OID 10 (the
// superuser initdb created on the source cluster) from pg_authid's heap
// file, or "" when it cannot be found. The current tuple version is the
// one whose xmax is invalid (a renamed role leaves an old version behind).
func bootstrapSuperuser(dataDir string) string {
	data, err := os.ReadFile(filepath.Join(dataDir, pgAuthidFile))
	if err != nil {
		return ""
	}
	return findRoleName(data, bootstrapSuperuserOID)
}

// findRoleName scans heap pages of pg_authid for the live tuple of role oid.
func findRoleName(data []byte, oid uint32) string {
	le := binary.LittleEndian
	found := ""
	for off := 0; off+pgtypes.BLCKSZ <= len(data); off += pgtypes.BLCKSZ {
		page := data[off : off+pgtypes.BLCKSZ]
		h, err := pgtypes.ParsePageHeader(page)
		if err != nil || pgtypes.PageIsNew(page) || h.Validate() != nil {
			continue
		}
		for lp := pgtypes.PageHeaderSize; lp+4 <= int(h.Lower); lp += 4 {
			word := le.Uint32(page[lp:])
			itemOff, flags, itemLen := int(word&0x7fff), (word>>15)&3, int(word>>17)
			const lpNormal = 1
			if flags != lpNormal || itemOff+itemLen > len(page) || itemLen < 24 {
				continue
			}
			tup := page[itemOff : itemOff+itemLen]
			xmax, infomask, hoff := le.Uint32(tup[4:]), le.Uint16(tup[20:]), int(tup[22])
			if hoff+4+nameDataLen > len(tup) || le.Uint32(tup[hoff:]) != oid {
				continue
			}
			name := tup[hoff+4 : hoff+4+nameDataLen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if xmax == 0 || infomask&heapXmaxInvalidFlag != 0 {
				return string(name)
			}
			if found == "" {
				found = string(name)
			}
		}
	}
	return found
}

// StopPostgres stops a server booted by BootPostgres (pg_ctl stop -m fast),
// as the owner of dataDir when running as root.
func StopPostgres(ctx context.Context, dataDir, pgBinDir string) error {
	binDir, err := PGBinDir(ctx, pgBinDir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_ctl"), "-D", dataDir, "-m", "fast", "-w", "stop")
	cmd.Dir = "/"
	if os.Geteuid() == 0 {
		fi, err := os.Stat(dataDir)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBoot, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}}
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: pg_ctl stop: %v: %s", ErrBoot, err, bytes.TrimSpace(out))
	}
	return nil
}
