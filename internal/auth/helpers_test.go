package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	tenantA = "3f0c2a6e9b1d4c7a8e5f0b2d4c6a8e0f"
	tenantB = "9a1b2c3d4e5f60718293a4b5c6d7e8f9"
)

type keyPair struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newKeyPair(t testing.TB) keyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return keyPair{pub: pub, priv: priv}
}

func newVerifier(t testing.TB, keys []ed25519.PublicKey, opts ...VerifierOption) *Verifier {
	t.Helper()
	v, err := NewVerifier(keys, opts...)
	require.NoError(t, err)
	return v
}

func issue(t testing.TB, priv ed25519.PrivateKey, c *Claims) string {
	t.Helper()
	tok, err := Issue(priv, c)
	require.NoError(t, err)
	return tok
}
