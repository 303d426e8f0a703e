package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/localstack"
	"github.com/stratadb/strata/internal/lsn"
)

// Environment variables the management commands read.
const (
	envStackDir   = "STRATA_DIR"
	envPageserver = "STRATA_PAGESERVER"
	envBridge     = "STRATA_BRIDGE"
	envToken      = "STRATA_TOKEN"
	envTokenFile  = "STRATA_TOKEN_FILE"
	envTenant     = "STRATA_TENANT"
)

// defaultStackDir is $STRATA_DIR, else localstack.DefaultDir.
func defaultStackDir() string {
	if d := os.Getenv(envStackDir); d != "" {
		return d
	}
	return localstack.DefaultDir
}

// connFlags are the flags every management command shares: where the
// stack is, and overrides for the addresses and the call timeout.
type connFlags struct {
	stackDir, pageserver, bridge string
	timeout                      time.Duration
}

// register adds the flags to cmd as persistent flags (so a command group
// passes them to its subcommands).
func (f *connFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.stackDir, "stack-dir", defaultStackDir(), "stack directory written by `stratactl init` ($"+envStackDir+")")
	pf.StringVar(&f.pageserver, "pageserver", os.Getenv(envPageserver), "pageserver gRPC address ($"+envPageserver+"; default: from the stack's config)")
	pf.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of each management call")
}

// registerBridge adds --bridge.
func (f *connFlags) registerBridge(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.bridge, "bridge", os.Getenv(envBridge), "safekeeper-bridge gRPC address ($"+envBridge+"; default: from the stack's config)")
}

// conn is an open client connection to one service.
type conn struct {
	*grpc.ClientConn
	addr    string
	service string
}

// dial connects to service ("pageserver" or "safekeeper-bridge") at
// override, or at the address in the stack's config, with the token from
// STRATA_TOKEN / STRATA_TOKEN_FILE or the stack's pageserverapi token.
// No token at all is allowed: a stack in trust mode needs none.
func (f *connFlags) dial(service, override string) (*conn, error) {
	addr := override
	var stack *localstack.Stack
	if s, err := localstack.Open(f.stackDir); err == nil {
		stack = s
	}
	if addr == "" {
		if stack == nil {
			flag := "--pageserver"
			if service != "pageserver" {
				flag = "--bridge"
			}
			return nil, fmt.Errorf("no %s address: no stack in %s (run `stratactl init`, pass --stack-dir, or give %s)", service, f.stackDir, flag)
		}
		a, err := stack.Addrs(service)
		if err != nil {
			return nil, err
		}
		addr = a.ListenAddr
	}
	token, err := auth.TokenFromEnv(envToken, envTokenFile)
	switch {
	case errors.Is(err, auth.ErrNoToken):
		token = ""
		if stack != nil {
			if t, err := stack.Token(auth.ScopePageserverAPI); err == nil {
				token = t
			}
		}
	case err != nil:
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerToken(token, false)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s address %q: %w", service, addr, err)
	}
	return &conn{ClientConn: cc, addr: addr, service: service}, nil
}

// callCtx bounds one unary call by --timeout (0: no bound).
func (f *connFlags) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, f.timeout)
}

// notFoundError marks an error as exit code 3.
type notFoundError struct{ err error }

func (e notFoundError) Error() string { return e.err.Error() }
func (e notFoundError) Unwrap() error { return e.err }

func isNotFound(err error) bool {
	var nf notFoundError
	return errors.As(err, &nf)
}

// rpcError turns a gRPC error from what into a message that says what to
// do next.
func (c *conn) rpcError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%s: cannot reach the %s at %s (%s); is the stack running? try `stratactl status`", what, c.service, c.addr, msg)
	case codes.Unauthenticated:
		return fmt.Errorf("%s: the %s refused the token (%s); set %s or %s, or use the stack's tokens/%s", what, c.service, msg, envToken, envTokenFile, auth.ScopePageserverAPI)
	case codes.PermissionDenied:
		return fmt.Errorf("%s: permission denied (%s); management needs a token of scope %s", what, msg, auth.ScopePageserverAPI)
	case codes.NotFound:
		return notFoundError{fmt.Errorf("%s: not found: %s", what, msg)}
	case codes.Unimplemented:
		return fmt.Errorf("%s: the %s at %s does not implement this yet (%s)", what, c.service, c.addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer from the %s at %s in time (%s); raise --timeout or check `stratactl logs %s`", what, c.service, c.addr, msg, c.service)
	case codes.AlreadyExists:
		return fmt.Errorf("%s: already exists: %s", what, msg)
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return fmt.Errorf("%s: %s", what, msg)
	default:
		return fmt.Errorf("%s: %s: %s (see `stratactl logs %s`)", what, st.Code(), msg, c.service)
	}
}

// idFlag validates a tenant or timeline id flag (D6: 32 lowercase hex).
func checkID(flag, value string, required bool) error {
	if value == "" {
		if required {
			return usageErrorf("--%s is required", flag)
		}
		return nil
	}
	if !auth.IsTenantID(value) {
		return usageErrorf("--%s %q is not an id (32 lowercase hex characters)", flag, value)
	}
	return nil
}

// parseLSN parses an --lsn value: "" or "latest" is 0 (the server's
// latest), anything else PostgreSQL's X/X form.
func parseLSN(flag, value string) (uint64, error) {
	if value == "" || value == "latest" {
		return 0, nil
	}
	l, err := lsn.Parse(value)
	if err != nil {
		return 0, usageErrorf("--%s %q: want an LSN like 0/16B3748 or \"latest\": %v", flag, value, err)
	}
	return uint64(l), nil
}

// fmtLSN prints an LSN as PostgreSQL does; 0 prints as "-" in text output.
func fmtLSN(v uint64) string { return lsn.LSN(v).String() }
