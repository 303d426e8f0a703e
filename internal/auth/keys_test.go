package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

func publicPEM(t *testing.T, k ed25519.PublicKey) []byte {
	t.Helper()
	b, err := MarshalPublicKeyPEM(k)
	require.NoError(t, err)
	return b
}

func ecdsaPEMs(t *testing.T) (pubPEM, privPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	privDER, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
}

func TestGenerateKeyPair(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath, err := GenerateKeyPair(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, PrivateKeyFileName), privPath)
	require.Equal(t, filepath.Join(dir, PublicKeyFileName), pubPath)

	for path, mode := range map[string]os.FileMode{privPath: 0o600, pubPath: 0o644} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode().Perm(), path)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary files left behind")

	priv, err := LoadPrivateKey(privPath)
	require.NoError(t, err)
	pubs, err := LoadPublicKeys(pubPath)
	require.NoError(t, err)
	require.Len(t, pubs, 1)
	require.Equal(t, priv.Public(), pubs[0])

	// The pair works end to end.
	v := newVerifier(t, pubs)
	_, err = v.Verify(issue(t, priv, &Claims{Scope: ScopePageserverAPI}))
	require.NoError(t, err)

	t.Run("refuses to overwrite", func(t *testing.T) {
		before, err := os.ReadFile(privPath)
		require.NoError(t, err)
		_, _, err = GenerateKeyPair(dir)
		require.ErrorIs(t, err, fs.ErrExist)
		require.Contains(t, err.Error(), privPath)
		after, err := os.ReadFile(privPath)
		require.NoError(t, err)
		require.Equal(t, before, after)
	})
	t.Run("refuses if only the public key exists", func(t *testing.T) {
		d := t.TempDir()
		writeFile(t, filepath.Join(d, PublicKeyFileName), []byte("x"))
		_, _, err := GenerateKeyPair(d)
		require.ErrorIs(t, err, fs.ErrExist)
		_, err = os.Stat(filepath.Join(d, PrivateKeyFileName))
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("missing dir", func(t *testing.T) {
		_, _, err := GenerateKeyPair(filepath.Join(t.TempDir(), "nope"))
		require.Error(t, err)
	})
}

func TestLoadPublicKeysFile(t *testing.T) {
	k1, k2 := newKeyPair(t), newKeyPair(t)
	dir := t.TempDir()
	ecPub, ecPriv := ecdsaPEMs(t)
	privPEM, err := MarshalPrivateKeyPEM(k1.priv)
	require.NoError(t, err)
	both := append(publicPEM(t, k1.pub), publicPEM(t, k2.pub)...)

	for _, tc := range []struct {
		name    string
		data    []byte
		want    []ed25519.PublicKey
		wantMsg string
	}{
		{"one key", publicPEM(t, k1.pub), []ed25519.PublicKey{k1.pub}, ""},
		{"two blocks", both, []ed25519.PublicKey{k1.pub, k2.pub}, ""},
		{"trailing newlines", append(publicPEM(t, k1.pub), "\n\n"...), []ed25519.PublicKey{k1.pub}, ""},
		{"empty", nil, nil, "no PEM block"},
		{"not pem", []byte("hello"), nil, "not a PEM file"},
		{"trailing garbage", append(publicPEM(t, k1.pub), "junk"...), nil, "unexpected data after the last PEM block"},
		{"private key", privPEM, nil, `PEM block "PRIVATE KEY", want "PUBLIC KEY"`},
		{"ecdsa key", ecPub, nil, "is not an Ed25519 public key"},
		{"ecdsa private", ecPriv, nil, `PEM block "PRIVATE KEY"`},
		{"bad der", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), nil, "auth: invalid key"},
		{"too large", make([]byte, maxKeyFileBytes+1), nil, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".pem"), tc.data)
			got, err := LoadPublicKeys(path)
			if tc.want != nil {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, ErrInvalidKey)
			require.Contains(t, err.Error(), tc.wantMsg)
			require.Contains(t, err.Error(), path)
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := LoadPublicKeys(filepath.Join(dir, "missing.pem"))
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
}

func TestLoadPublicKeysDir(t *testing.T) {
	k1, k2, k3 := newKeyPair(t), newKeyPair(t), newKeyPair(t)

	t.Run("all files, sorted, symlinks followed, subdirs skipped", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "b.pem"), publicPEM(t, k2.pub))
		writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, k1.pub))
		// Kubernetes secret volume layout: real files under a hidden dir,
		// reached through a "..data" dir symlink and per-file symlinks.
		hidden := filepath.Join(dir, "..2026_03_01")
		require.NoError(t, os.Mkdir(hidden, 0o755))
		writeFile(t, filepath.Join(hidden, "c.pem"), publicPEM(t, k3.pub))
		require.NoError(t, os.Symlink(hidden, filepath.Join(dir, "..data")))
		require.NoError(t, os.Symlink(filepath.Join("..data", "c.pem"), filepath.Join(dir, "c.pem")))

		keys, err := LoadPublicKeys(dir)
		require.NoError(t, err)
		require.Equal(t, []ed25519.PublicKey{k1.pub, k2.pub, k3.pub}, keys)

		v := newVerifier(t, keys)
		for _, k := range []keyPair{k1, k2, k3} {
			_, err := v.Verify(issue(t, k.priv, &Claims{Scope: ScopePageserverAPI}))
			require.NoError(t, err)
		}
	})
	t.Run("bad file is named", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a.pem"), publicPEM(t, k1.pub))
		bad := writeFile(t, filepath.Join(dir, "notes.txt"), []byte("remember to rotate"))
		_, err := LoadPublicKeys(dir)
		require.ErrorIs(t, err, ErrInvalidKey)
		require.Contains(t, err.Error(), bad)
	})
	t.Run("dangling symlink is named", func(t *testing.T) {
		dir := t.TempDir()
		link := filepath.Join(dir, "gone.pem")
		require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), link))
		_, err := LoadPublicKeys(dir)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.Contains(t, err.Error(), link)
	})
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
		_, err := LoadPublicKeys(dir)
		require.ErrorIs(t, err, ErrNoKeys)
		require.Contains(t, err.Error(), dir)
	})
}

func TestLoadPrivateKey(t *testing.T) {
	k := newKeyPair(t)
	dir := t.TempDir()
	good, err := MarshalPrivateKeyPEM(k.priv)
	require.NoError(t, err)
	_, ecPriv := ecdsaPEMs(t)
	for _, tc := range []struct {
		name    string
		data    []byte
		wantMsg string
	}{
		{"good", good, ""},
		{"public key", publicPEM(t, k.pub), `PEM block "PUBLIC KEY", want "PRIVATE KEY"`},
		{"not pem", []byte("secret"), "not a PEM file"},
		{"trailing data", append(append([]byte{}, good...), good...), "unexpected data after the PEM block"},
		{"ecdsa", ecPriv, "is not an Ed25519 private key"},
		{"bad der", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0}}), "auth: invalid key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")), tc.data)
			got, err := LoadPrivateKey(path)
			if tc.wantMsg == "" {
				require.NoError(t, err)
				require.Equal(t, k.priv, got)
				return
			}
			require.ErrorIs(t, err, ErrInvalidKey)
			require.Contains(t, err.Error(), tc.wantMsg)
			require.Contains(t, err.Error(), path)
		})
	}
	_, err = LoadPrivateKey(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// TestOpenSSLCompatibility checks the on-disk format promise: keys made by
// openssl (as Neon's tooling does) load here, and ours load in openssl.
func TestOpenSSLCompatibility(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	privPath := filepath.Join(dir, "priv.pem")
	pubPath := filepath.Join(dir, "pub.pem")
	out, err := exec.Command(openssl, "genpkey", "-algorithm", "ed25519", "-out", privPath).CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(openssl, "pkey", "-in", privPath, "-pubout", "-out", pubPath).CombinedOutput()
	require.NoError(t, err, string(out))

	priv, err := LoadPrivateKey(privPath)
	require.NoError(t, err)
	pubs, err := LoadPublicKeys(pubPath)
	require.NoError(t, err)
	_, err = newVerifier(t, pubs).Verify(issue(t, priv, &Claims{Scope: ScopePageserverAPI}))
	require.NoError(t, err)

	ours := t.TempDir()
	ourPriv, ourPub, err := GenerateKeyPair(ours)
	require.NoError(t, err)
	derived, err := exec.Command(openssl, "pkey", "-in", ourPriv, "-pubout").CombinedOutput()
	require.NoError(t, err, string(derived))
	want, err := os.ReadFile(ourPub)
	require.NoError(t, err)
	require.Equal(t, string(want), string(derived))
}

func FuzzParsePublicKeysPEM(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pubPEM, err := MarshalPublicKeyPEM(seed.Public().(ed25519.PublicKey))
	require.NoError(f, err)
	privPEM, err := MarshalPrivateKeyPEM(seed)
	require.NoError(f, err)
	f.Add(pubPEM)
	f.Add(privPEM)
	f.Add(append(append([]byte{}, pubPEM...), pubPEM...))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParsePublicKeysPEM(data)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			require.Nil(t, keys)
			return
		}
		require.NotEmpty(t, keys)
		for _, k := range keys {
			require.Len(t, k, ed25519.PublicKeySize)
		}
		_, err = ParsePrivateKeyPEM(data)
		require.Error(t, err, "a public key file must never parse as a private key")
	})
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	privPEM, err := MarshalPrivateKeyPEM(seed)
	require.NoError(f, err)
	f.Add(privPEM)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParsePrivateKeyPEM(data)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		require.Len(t, key, ed25519.PrivateKeySize)
	})
}
