package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/stratadb/strata/internal/durable"
)

// Key file names written by GenerateKeyPair.
const (
	PrivateKeyFileName = "auth_private_key.pem"
	PublicKeyFileName  = "auth_public_key.pem"
)

const (
	pemTypePublicKey  = "PUBLIC KEY"
	pemTypePrivateKey = "PRIVATE KEY"
	// maxKeyFileBytes bounds what is read from one key file. An Ed25519 PEM
	// key is ~120 bytes; anything near this limit is not a key file.
	maxKeyFileBytes = 64 << 10
)

// LoadPublicKeys loads the Ed25519 public keys at path, which is either one
// PEM file or a directory. In a directory every entry that resolves to a
// regular file must be a key file (an unusable file is an error naming it);
// subdirectories are skipped, not descended into, which also skips the
// "..data" links of Kubernetes secret volumes. A file may hold several
// "PUBLIC KEY" blocks. Keys are returned in file-name order. Zero keys is an
// error wrapping ErrNoKeys.
func LoadPublicKeys(path string) ([]ed25519.PublicKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: public key path: %w", err)
	}
	if !info.IsDir() {
		keys, err := loadPublicKeyFile(path)
		if err != nil {
			return nil, err
		}
		return keys, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("auth: public key directory: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var keys []ed25519.PublicKey
	for _, e := range entries {
		file := filepath.Join(path, e.Name())
		// Stat, not e.Info: follow symlinks so linked key files count.
		fi, err := os.Stat(file)
		if err != nil {
			return nil, fmt.Errorf("auth: public key file %s: %w", file, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		fileKeys, err := loadPublicKeyFile(file)
		if err != nil {
			return nil, err
		}
		keys = append(keys, fileKeys...)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: directory %s contains no key files", ErrNoKeys, path)
	}
	return keys, nil
}

func loadPublicKeyFile(file string) ([]ed25519.PublicKey, error) {
	data, err := readKeyFile(file)
	if err != nil {
		return nil, err
	}
	keys, err := ParsePublicKeysPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w (public key file %s)", err, file)
	}
	return keys, nil
}

func readKeyFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("auth: key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", file, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%w: key file %s is larger than %d bytes", ErrInvalidKey, file, maxKeyFileBytes)
	}
	return data, nil
}

// ParsePublicKeysPEM parses one or more PEM "PUBLIC KEY" blocks, each an
// Ed25519 key in PKIX form. Anything else in the input, including trailing
// non-PEM text, is an error wrapping ErrInvalidKey.
func ParsePublicKeysPEM(data []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemTypePublicKey {
			return nil, fmt.Errorf("%w: PEM block %q, want %q", ErrInvalidKey, truncate(block.Type), pemTypePublicKey)
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		key, ok := parsed.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: %T is not an Ed25519 public key", ErrInvalidKey, parsed)
		}
		keys = append(keys, key)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		if len(keys) == 0 {
			return nil, fmt.Errorf("%w: not a PEM file", ErrInvalidKey)
		}
		return nil, fmt.Errorf("%w: unexpected data after the last PEM block", ErrInvalidKey)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no PEM block", ErrInvalidKey)
	}
	return keys, nil
}

// LoadPrivateKey loads an Ed25519 private key from a PEM "PRIVATE KEY"
// (PKCS#8) file, the format `openssl genpkey -algorithm ed25519` writes.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w (private key file %s)", err, path)
	}
	return key, nil
}

// ParsePrivateKeyPEM parses exactly one PEM "PRIVATE KEY" block holding an
// Ed25519 key in PKCS#8 form.
func ParsePrivateKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: not a PEM file", ErrInvalidKey)
	}
	if block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("%w: PEM block %q, want %q", ErrInvalidKey, truncate(block.Type), pemTypePrivateKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: unexpected data after the PEM block", ErrInvalidKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not an Ed25519 private key", ErrInvalidKey, parsed)
	}
	return key, nil
}

// MarshalPublicKeyPEM encodes key as a PEM "PUBLIC KEY" (PKIX) block.
func MarshalPublicKeyPEM(key ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePublicKey, Bytes: der}), nil
}

// MarshalPrivateKeyPEM encodes key as a PEM "PRIVATE KEY" (PKCS#8) block.
func MarshalPrivateKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der}), nil
}

// GenerateKeyPair creates a new Ed25519 key pair in dir (which must exist)
// as PrivateKeyFileName (mode 0600) and PublicKeyFileName (mode 0644) and
// returns their paths. Each file is written to a temporary name, fsynced and
// renamed, then the directory is fsynced, so a crash leaves either no file
// or a complete one. It refuses, with an error wrapping fs.ErrExist, to
// replace either file: overwriting a private key silently would lock out
// every token signed with it.
func GenerateKeyPair(dir string) (privPath, pubPath string, err error) {
	privPath = filepath.Join(dir, PrivateKeyFileName)
	pubPath = filepath.Join(dir, PublicKeyFileName)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("auth: key file %s: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("auth: key file: %w", err)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("auth: generate key: %w", err)
	}
	privPEM, err := MarshalPrivateKeyPEM(priv)
	if err != nil {
		return "", "", err
	}
	pubPEM, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		return "", "", err
	}
	// Public key first: a crash between the two leaves a useless public key
	// rather than a private key with no public half anyone can find.
	// durable.WriteFile's temp file is created 0600, so private key bytes
	// are never readable by others, even for an instant.
	if err := durable.WriteFile(pubPath, pubPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("auth: %w", err)
	}
	if err := durable.WriteFile(privPath, privPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("auth: %w", err)
	}
	return privPath, pubPath, nil
}
