package localstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// State is a service's state as Status sees it.
type State string

const (
	// StateRunning: the process is alive and its health probe passes.
	StateRunning State = "running"
	// StateUnhealthy: the process is alive but its probe fails.
	StateUnhealthy State = "unhealthy"
	// StateStopped: no pid file.
	StateStopped State = "stopped"
	// StateDead: a pid file whose process is gone (killed or crashed).
	StateDead State = "dead"
)

// ServiceStatus is one service's line in `stratactl status`.
type ServiceStatus struct {
	Name        string `json:"name"`
	State       State  `json:"state"`
	PID         int    `json:"pid,omitempty"`
	ListenAddr  string `json:"listen_addr"`
	MetricsAddr string `json:"metrics_addr"`
	LogFile     string `json:"log_file"`
	// Detail says why the state is not running, or what Start/Stop did.
	Detail string `json:"detail,omitempty"`
}

// Up reports whether the service is running and healthy.
func (s ServiceStatus) Up() bool { return s.State == StateRunning }

// FindBinary returns the path of the service binary name: in binDir when
// given (and only there), else next to the running executable, else in
// PATH.
func FindBinary(name, binDir string) (string, error) {
	if binDir != "" {
		p := filepath.Join(binDir, name)
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s is not an executable file (build it with `make build`, which fills ./bin)", ErrBinaryNotFound, p)
	}
	var searched []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if isExecutable(p) {
			return p, nil
		}
		searched = append(searched, filepath.Dir(exe))
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	searched = append(searched, "PATH")
	return "", fmt.Errorf("%w: %s is not next to stratactl nor in PATH (searched %s); run `make build` and pass --bin-dir ./bin", ErrBinaryNotFound, name, strings.Join(searched, ", "))
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// StartOptions configures Start.
type StartOptions struct {
	// BinDir: see FindBinary.
	BinDir string
	// ReadyTimeout bounds the wait for each service's health; 0 means 30 s.
	ReadyTimeout time.Duration
}

// Start starts every service that is not running, in order, waiting for
// each to become healthy. A service that fails to start is stopped again
// and reported; Start goes on with the others so that one broken service
// does not hide the state of the rest. The error joins every failure.
func (s *Stack) Start(ctx context.Context, opts StartOptions) ([]ServiceStatus, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	var out []ServiceStatus
	var errs []error
	for _, svc := range Services {
		st, err := s.startOne(ctx, svc, opts)
		out = append(out, st)
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out, errors.Join(errs...)
}

func (s *Stack) startOne(ctx context.Context, svc Service, opts StartOptions) (ServiceStatus, error) {
	st := s.status(ctx, svc)
	switch st.State {
	case StateRunning:
		st.Detail = "already running"
		return st, nil
	case StateUnhealthy:
		return st, fmt.Errorf("%w: %s (pid %d) is running but not healthy: %s; see %s, or `stratactl stop` and start again",
			ErrNotReady, svc.Name, st.PID, st.Detail, st.LogFile)
	}
	bin, err := FindBinary(svc.Name, opts.BinDir)
	if err != nil {
		st.Detail = err.Error()
		return st, err
	}
	logFile, err := os.OpenFile(st.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return st, fmt.Errorf("localstack: %w", err)
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, 2)
	fmt.Fprintf(logFile, "--- stratactl start %s at %s: %s --config %s\n", svc.Name, time.Now().UTC().Format(time.RFC3339), bin, s.ConfigPath(svc.Name))

	cmd := exec.Command(bin, "--config", s.ConfigPath(svc.Name))
	cmd.Dir = s.Dir
	cmd.Env = s.serviceEnv(svc)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: the service outlives stratactl and a terminal's
	// Ctrl-C on stratactl does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		st.Detail = err.Error()
		return st, fmt.Errorf("localstack: starting %s: %w", svc.Name, err)
	}
	pid := cmd.Process.Pid
	st.PID = pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(st.pidPath(s), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return st, fmt.Errorf("localstack: %w", err)
	}

	deadline := time.NewTimer(opts.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if probe(ctx, svc, st.ListenAddr) == nil {
			st.State, st.Detail = StateRunning, "started"
			return st, nil
		}
		select {
		case err := <-exited:
			_ = os.Remove(st.pidPath(s))
			st.State, st.PID = StateDead, 0
			st.Detail = fmt.Sprintf("exited during start-up (%v)", err)
			return st, fmt.Errorf("%w: %s exited during start-up (%v); its log %s says:\n%s", ErrNotReady, svc.Name, err, st.LogFile, logTail(st.LogFile, logStart, 10))
		case <-deadline.C:
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		// Timed out or cancelled: do not leave a half-started service.
		why := fmt.Sprintf("not healthy within %s", opts.ReadyTimeout)
		if ctx.Err() != nil {
			why = ctx.Err().Error()
		}
		terminate(pid, exited, 5*time.Second)
		_ = os.Remove(st.pidPath(s))
		st.State, st.PID, st.Detail = StateStopped, 0, why
		return st, fmt.Errorf("%w: %s %s at %s; stopped it again; see its log %s:\n%s", ErrNotReady, svc.Name, why, st.ListenAddr, st.LogFile, logTail(st.LogFile, logStart, 10))
	}
}

func (st ServiceStatus) pidPath(s *Stack) string { return s.PIDPath(st.Name) }

// serviceEnv is the caller's environment with the service's token variable
// pointing at its token file (and the direct variable removed, which
// auth.TokenFromEnv would refuse next to it).
func (s *Stack) serviceEnv(svc Service) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if svc.TokenFileEnv != "" && (name == svc.TokenEnv || name == svc.TokenFileEnv) {
			continue
		}
		env = append(env, kv)
	}
	if svc.TokenFileEnv != "" {
		env = append(env, svc.TokenFileEnv+"="+s.TokenPath(svc.TokenScope))
	}
	return env
}

// terminate sends SIGTERM to pid, waits up to grace for it to exit (through
// exited when we are its parent, else by polling), then SIGKILLs its group.
func terminate(pid int, exited <-chan error, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if exited != nil {
			select {
			case <-exited:
				return
			case <-time.After(50 * time.Millisecond):
			}
		} else {
			if !processAlive(pid) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if exited != nil {
		<-exited
	}
}

// Stop stops every running service in reverse start order: SIGTERM, then
// SIGKILL of its process group after grace (0 means 10 s). Stale pid files
// are removed. It returns each service's resulting status.
func (s *Stack) Stop(ctx context.Context, grace time.Duration) ([]ServiceStatus, error) {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	out := make([]ServiceStatus, len(Services))
	var errs []error
	for i := len(Services) - 1; i >= 0; i-- {
		svc := Services[i]
		pid, alive, err := s.readPID(svc)
		st := s.baseStatus(svc)
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			st.State, st.Detail = StateStopped, "was not running"
		case err != nil:
			errs = append(errs, err)
			st.State, st.Detail = StateStopped, err.Error()
		case !alive:
			_ = os.Remove(s.PIDPath(svc.Name))
			st.State, st.Detail = StateStopped, fmt.Sprintf("was not running (removed stale pid file of pid %d)", pid)
		default:
			terminate(pid, nil, grace)
			if processAlive(pid) {
				errs = append(errs, fmt.Errorf("localstack: %s (pid %d) did not stop", svc.Name, pid))
				st.State, st.PID, st.Detail = StateUnhealthy, pid, "did not stop"
				break
			}
			_ = os.Remove(s.PIDPath(svc.Name))
			st.State, st.Detail = StateStopped, fmt.Sprintf("stopped (pid %d)", pid)
		}
		out[i] = st
	}
	return out, errors.Join(errs...)
}

// Status reports every service's state.
func (s *Stack) Status(ctx context.Context) []ServiceStatus {
	out := make([]ServiceStatus, len(Services))
	for i, svc := range Services {
		out[i] = s.status(ctx, svc)
	}
	return out
}

func (s *Stack) baseStatus(svc Service) ServiceStatus {
	st := ServiceStatus{Name: svc.Name, LogFile: s.LogPath(svc.Name)}
	if a, err := s.Addrs(svc.Name); err == nil {
		st.ListenAddr, st.MetricsAddr = a.ListenAddr, a.MetricsAddr
	} else {
		st.Detail = err.Error()
	}
	return st
}

func (s *Stack) status(ctx context.Context, svc Service) ServiceStatus {
	st := s.baseStatus(svc)
	pid, alive, err := s.readPID(svc)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		st.State = StateStopped
	case err != nil:
		st.State, st.Detail = StateDead, err.Error()
	case !alive:
		st.State = StateDead
		st.Detail = fmt.Sprintf("pid %d from %s is gone (killed or crashed; see %s)", pid, s.PIDPath(svc.Name), st.LogFile)
	default:
		st.PID = pid
		if err := probe(ctx, svc, st.ListenAddr); err != nil {
			st.State, st.Detail = StateUnhealthy, err.Error()
		} else {
			st.State = StateRunning
		}
	}
	return st
}

// readPID reads svc's pid file. alive is true only when the process exists,
// is not a zombie and runs svc's binary (a reused pid is not ours).
func (s *Stack) readPID(svc Service) (pid int, alive bool, err error) {
	data, err := os.ReadFile(s.PIDPath(svc.Name))
	if err != nil {
		return 0, false, err
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false, fmt.Errorf("localstack: pid file %s is corrupt: %q", s.PIDPath(svc.Name), data)
	}
	return pid, processAlive(pid) && processRuns(pid, svc.Name), nil
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name (which may hold spaces).
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// processRuns reports whether pid's executable is called name.
func processRuns(pid int, name string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(argv0)) == name
}

// logTail returns up to n last lines of path written after offset.
func logTail(path string, offset int64, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "  (cannot read log: " + err.Error() + ")"
	}
	if offset > 0 && offset <= int64(len(data)) {
		data = data[offset:]
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
