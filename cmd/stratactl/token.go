package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	"github.com/stratadb/strata/internal/auth"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create keys and issue or verify JWTs (development and tests)",
		Long: `Create Ed25519 key pairs and issue or verify the EdDSA JWTs Strata services
accept (design D5). Claims: {"scope": "tenant"|"pageserverapi"|"safekeeperdata",
"tenant_id": "<32 lowercase hex>"}.

Tokens are read from stdin or a file, never from arguments.`,
		Args: noArgs,
	}
	cmd.AddCommand(newTokenKeygenCmd(), newTokenIssueCmd(), newTokenVerifyCmd())
	return cmd
}

func newTokenKeygenCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "keygen --dir DIR",
		Short: "Write a new Ed25519 key pair into DIR",
		Long: fmt.Sprintf(`Write a new Ed25519 key pair into DIR (created 0700 if missing):
%s (mode 0600, PKCS#8) and %s (mode 0644, PKIX),
in the PEM formats openssl writes. Existing key files are never replaced.
Give services and "token verify" the public key file, not DIR: a key
directory must hold public keys only.`,
			auth.PrivateKeyFileName, auth.PublicKeyFileName),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			privPath, pubPath, err := auth.GenerateKeyPair(dir)
			if err != nil {
				return err
			}
			result := struct {
				PrivateKey string `json:"private_key"`
				PublicKey  string `json:"public_key"`
			}{privPath, pubPath}
			return printOutput(cmd, result, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "private key: %s (keep secret)\npublic key:  %s\n", privPath, pubPath)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the key pair into (required)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func newTokenIssueCmd() *cobra.Command {
	var (
		scope, tenantID, keyPath string
		ttl                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue --scope SCOPE [--tenant ID] --key PRIVATE.pem [--ttl 24h]",
		Short: "Sign a token and print it",
		Long: `Sign a token with an Ed25519 private key and print it on stdout.
Scope "tenant" needs --tenant. --ttl 0 issues a token without expiry (as Neon's).
For development and tests: production tokens come from the console.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := auth.ParseScope(scope)
			if err != nil {
				return usageError{fmt.Errorf("--scope: %w", err)}
			}
			if s == auth.ScopeTenant && tenantID == "" {
				return usageErrorf("--scope tenant needs --tenant")
			}
			if tenantID != "" && !auth.IsTenantID(tenantID) {
				return usageErrorf("--tenant %q is not a tenant id (32 lowercase hex characters)", tenantID)
			}
			if ttl < 0 {
				return usageErrorf("--ttl %s is negative", ttl)
			}
			priv, err := auth.LoadPrivateKey(keyPath)
			if err != nil {
				return err
			}
			now := time.Now().Truncate(time.Second)
			claims := &auth.Claims{Scope: s, TenantID: tenantID}
			claims.IssuedAt = jwt.NewNumericDate(now)
			if ttl > 0 {
				claims.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
			}
			token, err := auth.Issue(priv, claims)
			if err != nil {
				return err
			}
			result := struct {
				Token  string     `json:"token"`
				Claims claimsView `json:"claims"`
			}{token, newClaimsView(claims)}
			return printOutput(cmd, result, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, token)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&scope, "scope", "", `token scope: "tenant", "pageserverapi" or "safekeeperdata" (required)`)
	cmd.Flags().StringVar(&tenantID, "tenant", "", "tenant id (32 lowercase hex); required for scope tenant")
	cmd.Flags().StringVar(&keyPath, "key", "", "Ed25519 private key PEM file (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime of the token; 0 for no expiry")
	_ = cmd.MarkFlagRequired("scope")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func newTokenVerifyCmd() *cobra.Command {
	var (
		keyPath, tokenFile string
		requireExpiry      bool
	)
	cmd := &cobra.Command{
		Use:   "verify --key PUBLIC.pem|DIR [--token-file FILE] < token",
		Short: "Verify a token and print its claims",
		Long: `Verify a token read from stdin (or --token-file) against the Ed25519 public
key(s) in a PEM file or a directory of them, exactly as Strata services do,
and print its claims. An invalid token exits with code 1 and says why.
The token is never taken as an argument: other users can read command lines.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("%s reads the token from stdin or --token-file, never from arguments (other users can read command lines)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := readToken(cmd.InOrStdin(), tokenFile)
			if err != nil {
				return err
			}
			keys, err := auth.LoadPublicKeys(keyPath)
			if err != nil {
				return err
			}
			var opts []auth.VerifierOption
			if requireExpiry {
				opts = append(opts, auth.RequireExpiry())
			}
			verifier, err := auth.NewVerifier(keys, opts...)
			if err != nil {
				return err
			}
			claims, err := verifier.Verify(token)
			if err != nil {
				return fmt.Errorf("token is invalid: %w", err)
			}
			view := newClaimsView(claims)
			return printOutput(cmd, view, func(w io.Writer) error { return view.writeText(w) })
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "Ed25519 public key PEM file, or a directory of them (required)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the token from FILE instead of stdin")
	cmd.Flags().BoolVar(&requireExpiry, "require-exp", false, "reject tokens without an expiry (exp)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// readToken reads one token from file, or from stdin when file is empty.
func readToken(stdin io.Reader, file string) (string, error) {
	source := "stdin"
	in := stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		source, in = file, f
	}
	data, err := io.ReadAll(io.LimitReader(in, auth.MaxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("read token from %s: %w", source, err)
	}
	if len(data) > auth.MaxTokenBytes {
		return "", fmt.Errorf("token from %s is larger than %d bytes", source, auth.MaxTokenBytes)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		if file == "" {
			return "", usageError{errors.New("no token on stdin (pipe it in, or use --token-file)")}
		}
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return token, nil
}

// claimsView is how claims are shown: times as RFC 3339, absent ones omitted.
type claimsView struct {
	Scope     auth.Scope `json:"scope"`
	TenantID  string     `json:"tenant_id,omitempty"`
	IssuedAt  string     `json:"issued_at,omitempty"`
	NotBefore string     `json:"not_before,omitempty"`
	ExpiresAt string     `json:"expires_at,omitempty"`
}

func newClaimsView(c *auth.Claims) claimsView {
	return claimsView{
		Scope:     c.Scope,
		TenantID:  c.TenantID,
		IssuedAt:  formatDate(c.IssuedAt),
		NotBefore: formatDate(c.NotBefore),
		ExpiresAt: formatDate(c.ExpiresAt),
	}
}

func formatDate(d *jwt.NumericDate) string {
	if d == nil {
		return ""
	}
	return d.UTC().Format(time.RFC3339)
}

func (v claimsView) writeText(w io.Writer) error {
	orNone := func(s, none string) string {
		if s == "" {
			return none
		}
		return s
	}
	_, err := fmt.Fprintf(w, "token is valid\nscope:      %s\ntenant_id:  %s\nissued_at:  %s\nexpires_at: %s\n",
		v.Scope, orNone(v.TenantID, "-"), orNone(v.IssuedAt, "-"), orNone(v.ExpiresAt, "never"))
	if err == nil && v.NotBefore != "" {
		_, err = fmt.Fprintf(w, "not_before: %s\n", v.NotBefore)
	}
	return err
}
