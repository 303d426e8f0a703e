package localstack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Untar extracts a data directory tar (a fullbackup) from r into dir,
// which must be empty or absent. Directories are created 0700 and files
// 0600, as PostgreSQL wants its data directory; member names that are
// absolute or climb out with ".." are refused, and so are links and
// devices, which a fullbackup never holds. It returns the bytes of file
// content written.
func Untar(r io.Reader, dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBoot, err)
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBoot, err)
	} else if len(entries) > 0 {
		return 0, fmt.Errorf("%w: %s is not empty (choose a new --dir)", ErrBoot, dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBoot, err)
	}
	var total int64
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("%w: reading tar: %v", ErrBoot, err)
		}
		rel, err := safeMemberPath(hdr.Name)
		if err != nil {
			return total, err
		}
		if rel == "" {
			continue // "./" itself
		}
		target := filepath.Join(dir, filepath.FromSlash(rel))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return total, fmt.Errorf("%w: %v", ErrBoot, err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return total, fmt.Errorf("%w: %v", ErrBoot, err)
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return total, fmt.Errorf("%w: %v", ErrBoot, err)
			}
			n, err := io.Copy(f, tr)
			total += n
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return total, fmt.Errorf("%w: writing %s: %v", ErrBoot, rel, err)
			}
		default:
			return total, fmt.Errorf("%w: tar member %q has type %q; a fullbackup holds only directories and files", ErrBoot, hdr.Name, hdr.Typeflag)
		}
	}
}

// safeMemberPath cleans a tar member name into a relative slash path inside
// the extraction directory ("" for the directory itself).
func safeMemberPath(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) || strings.Contains(name, `\`) {
		return "", fmt.Errorf("%w: tar member name %q is not allowed", ErrBoot, name)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("%w: tar member %q has an absolute path", ErrBoot, name)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: tar member %q points outside the directory", ErrBoot, name)
	}
	if clean == "." {
		return "", nil
	}
	return clean, nil
}
