package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"
)

type serverSection struct {
	Workers int    `toml:"workers"`
	Name    string `toml:"name"`
}

type testConfig struct {
	ListenAddr string        `toml:"listen_addr"`
	Timeout    Duration      `toml:"timeout"`
	CacheSize  ByteSize      `toml:"cache_size"`
	Server     serverSection `toml:"server"`
	Token      Secret        `toml:"-"`

	usage io.Writer // where flag usage goes; io.Discard in tests
}

func defaultTestConfig() testConfig {
	return testConfig{
		ListenAddr: "127.0.0.1:51051",
		Timeout:    Duration(30 * time.Second),
		CacheSize:  64 * MiB,
		Server:     serverSection{Workers: 4, Name: "default"},
		usage:      io.Discard,
	}
}

func (c *testConfig) RegisterFlags(fs *flag.FlagSet) {
	if c.usage != nil {
		fs.SetOutput(c.usage)
	}
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.Var(&c.Timeout, "timeout", "wait timeout")
	fs.Var(&c.CacheSize, "cache-size", "page cache size")
	fs.IntVar(&c.Server.Workers, "workers", c.Server.Workers, "worker count")
}

func (c *testConfig) Validate() error {
	var p Problems
	if c.ListenAddr == "" {
		p.Addf("listen_addr", "must not be empty")
	}
	if c.Timeout <= 0 {
		p.Addf("timeout", "must be positive, got %s", c.Timeout)
	}
	if c.CacheSize < 8*KiB {
		p.Addf("cache_size", "must be at least 8KiB, got %s", c.CacheSize)
	}
	if c.Server.Workers < 1 {
		p.Addf("server.workers", "must be at least 1, got %d", c.Server.Workers)
	}
	return p.Err()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestDecode(t *testing.T) {
	cfg := defaultTestConfig()
	err := Decode([]byte(`
listen_addr = "0.0.0.0:1"
timeout = "250ms"
cache_size = "1GiB"
[server]
workers = 8
`), "svc.toml", &cfg)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:1", cfg.ListenAddr)
	require.Equal(t, 250*time.Millisecond, cfg.Timeout.Std())
	require.Equal(t, GiB, cfg.CacheSize)
	require.Equal(t, 8, cfg.Server.Workers)
	require.Equal(t, "default", cfg.Server.Name, "absent keys keep their defaults")
}

func TestDecodeUnknownKeys(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    []string
		notWant []string
	}{
		{name: "top level", toml: "listen_adr = \"x\"\n", want: []string{"listen_adr"}},
		{name: "nested", toml: "[server]\nworkers = 2\nworkerz = 3\n", want: []string{"server.workerz"}},
		{name: "dotted nested", toml: "server.nmae = \"x\"\n", want: []string{"server.nmae"}},
		{
			name:    "unknown table reported once",
			toml:    "[extra]\na = 1\nb = 2\n[extra.deeper]\nc = 3\n",
			want:    []string{"extra (table)"},
			notWant: []string{"extra.a", "extra.deeper"},
		},
		{
			name: "every key listed",
			toml: "typo1 = 1\nlisten_addr = \"ok\"\ntypo2 = 2\n[server]\ntypo3 = 3\n",
			want: []string{"typo1", "typo2", "server.typo3"},
		},
		{name: "secret in file", toml: "token = \"hunter2\"\n", want: []string{"token"}, notWant: []string{"hunter2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultTestConfig()
			err := Decode([]byte(tt.toml), "svc.toml", &cfg)
			require.ErrorIs(t, err, ErrUnknownKeys)
			require.Contains(t, err.Error(), "svc.toml")
			for _, k := range tt.want {
				require.Contains(t, err.Error(), k)
			}
			for _, k := range tt.notWant {
				require.NotContains(t, err.Error(), k)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error
	}{
		{name: "syntax", toml: "listen_addr = \"x\"\ntimeout = \n", want: []string{"svc.toml:2:"}},
		{name: "int for duration", toml: "\ntimeout = 5\n", want: []string{"svc.toml:2:", "timeout", `duration "5"`, "want e.g."}},
		{name: "bad duration text", toml: "timeout = \"5 parsecs\"\n", want: []string{"svc.toml:1:", "timeout", "5 parsecs"}},
		{name: "bad byte size", toml: "cache_size = \"12 furlongs\"\n", want: []string{"svc.toml:1:", "cache_size", "furlongs"}},
		{name: "string for int", toml: "[server]\n\nworkers = \"many\"\n", want: []string{"svc.toml", "line 3", "server.workers", "incompatible types"}},
		{name: "table for string", toml: "[listen_addr]\nx = 1\n", want: []string{"svc.toml", "listen_addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultTestConfig()
			err := Decode([]byte(tt.toml), "svc.toml", &cfg)
			require.ErrorIs(t, err, ErrDecode)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDecodeNotAPointer(t *testing.T) {
	require.ErrorIs(t, Decode([]byte("a = 1"), "x", testConfig{}), ErrDecode)
}

func TestDecodeFile(t *testing.T) {
	path := writeFile(t, "svc.toml", "listen_addr = \"file\"\n")
	cfg := defaultTestConfig()
	require.NoError(t, DecodeFile(path, &cfg))
	require.Equal(t, "file", cfg.ListenAddr)

	missing := filepath.Join(t.TempDir(), "nope.toml")
	err := DecodeFile(missing, &cfg)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Contains(t, err.Error(), "nope.toml")

	bad := writeFile(t, "bad.toml", "nope = 1\n")
	err = DecodeFile(bad, &cfg)
	require.ErrorIs(t, err, ErrUnknownKeys)
	require.Contains(t, err.Error(), bad)
}

func TestLoad(t *testing.T) {
	file := writeFile(t, "svc.toml", `
listen_addr = "10.0.0.1:1"
timeout = "1m"
[server]
workers = 2
name = "from-file"
`)
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c testConfig)
		wantErr error
		errHas  []string
	}{
		{
			name: "defaults only",
			args: nil,
			check: func(t *testing.T, c testConfig) {
				want := defaultTestConfig()
				require.Equal(t, want.ListenAddr, c.ListenAddr)
				require.Equal(t, want.Server, c.Server)
			},
		},
		{
			name: "file",
			args: []string{"-config", file},
			check: func(t *testing.T, c testConfig) {
				require.Equal(t, "10.0.0.1:1", c.ListenAddr)
				require.Equal(t, time.Minute, c.Timeout.Std())
				require.Equal(t, 64*MiB, c.CacheSize, "default kept")
				require.Equal(t, serverSection{Workers: 2, Name: "from-file"}, c.Server)
			},
		},
		{
			name: "flags override file, in any order",
			args: []string{"-workers", "9", "--config=" + file, "--timeout", "5s", "-cache-size=1GiB"},
			check: func(t *testing.T, c testConfig) {
				require.Equal(t, "10.0.0.1:1", c.ListenAddr)
				require.Equal(t, 5*time.Second, c.Timeout.Std())
				require.Equal(t, GiB, c.CacheSize)
				require.Equal(t, 9, c.Server.Workers)
				require.Equal(t, "from-file", c.Server.Name)
			},
		},
		{
			name: "empty config value means no file",
			args: []string{"-config="},
			check: func(t *testing.T, c testConfig) {
				require.Equal(t, defaultTestConfig().ListenAddr, c.ListenAddr)
			},
		},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp},
		{name: "unknown flag", args: []string{"-nope"}, errHas: []string{"nope", "svc"}},
		{name: "bad flag value", args: []string{"-cache-size", "lots"}, errHas: []string{"-cache-size", `byte size "lots"`}},
		{name: "config without value", args: []string{"-config"}, errHas: []string{"needs an argument"}},
		{name: "missing file", args: []string{"--config", "/nonexistent/svc.toml"}, wantErr: fs.ErrNotExist},
		{name: "positional", args: []string{"extra"}, errHas: []string{"unexpected arguments", "extra"}},
		{
			name:    "every problem at once",
			args:    []string{"-listen-addr=", "-timeout=0s", "-cache-size=1KiB", "-workers=0"},
			wantErr: ErrInvalid,
			errHas: []string{
				"config: listen_addr: must not be empty",
				"config: timeout: must be positive, got 0s",
				"config: cache_size: must be at least 8KiB, got 1KiB",
				"config: server.workers: must be at least 1, got 0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultTestConfig()
			err := Load("svc", tt.args, &cfg)
			if tt.wantErr == nil && tt.errHas == nil {
				require.NoError(t, err)
				tt.check(t, cfg)
				return
			}
			require.Error(t, err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
			for _, s := range tt.errHas {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}

type badFlagsConfig struct{ testConfig }

func (c *badFlagsConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.String("config", "", "mine")
}

func TestLoadRefusesConfigFlag(t *testing.T) {
	err := Load("svc", nil, &badFlagsConfig{})
	require.ErrorContains(t, err, "must not register -config")
}

func TestFindConfigPath(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"-config", "a.toml"}, "a.toml"},
		{[]string{"--config", "a.toml"}, "a.toml"},
		{[]string{"-config=a.toml"}, "a.toml"},
		{[]string{"--config=a=b.toml"}, "a=b.toml"},
		{[]string{"-listen-addr", "x", "-config", "a.toml", "-config", "b.toml"}, "b.toml"},
		{[]string{"--", "-config", "a.toml"}, ""},
		{[]string{"config", "a.toml"}, ""},
		{[]string{"-configx", "a.toml"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := findConfigPath(tt.args)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: " 2s ", want: 2 * time.Second},
		{in: "0", want: 0},
		{in: "-1s", want: -time.Second},
		{in: "5", wantErr: true},
		{in: "", wantErr: true},
		{in: "fast", wantErr: true},
		{in: "1y", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				require.ErrorIs(t, err, ErrSyntax)
				require.Contains(t, err.Error(), fmt.Sprintf("%q", tt.in))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, d.Std())
			text, err := d.MarshalText()
			require.NoError(t, err)
			var back Duration
			require.NoError(t, back.Set(string(text)))
			require.Equal(t, d, back)
			require.Equal(t, string(text), d.String())
		})
	}
}

func TestByteSizeParse(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "4096B", want: 4096},
		{in: "8KiB", want: 8192},
		{in: "8kB", want: 8192},
		{in: "8kb", want: 8192},
		{in: "64MiB", want: 64 << 20},
		{in: "64MB", want: 64 << 20},
		{in: "64 MiB", want: 64 << 20},
		{in: " 1GiB ", want: 1 << 30},
		{in: "1GB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "3PiB", want: 3 << 50},
		{in: "16383PiB", want: 16383 << 50},
		{in: "18446744073709551615", want: 1<<64 - 1},
		{in: "16384PiB", wantErr: "too large"},
		{in: "18446744073709551616", wantErr: "too large"},
		{in: "", wantErr: "byte size"},
		{in: "MiB", wantErr: "byte size"},
		{in: "-1", wantErr: "byte size"},
		{in: "1.5GiB", wantErr: "unknown unit"},
		{in: "1 GiB x", wantErr: "unknown unit"},
		{in: "1k", wantErr: "unknown unit"},
		{in: "12 furlongs", wantErr: "unknown unit"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var b ByteSize
			err := b.Set(tt.in)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrSyntax)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, b)
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536 * KiB, "1536KiB"},
		{64 * MiB, "64MiB"},
		{GiB, "1GiB"},
		{5 * TiB, "5TiB"},
		{7 * PiB, "7PiB"},
		{1<<64 - 1, "18446744073709551615B"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, tt.in.String())
			text, err := tt.in.MarshalText()
			require.NoError(t, err)
			var back ByteSize
			require.NoError(t, back.UnmarshalText(text))
			require.Equal(t, tt.in, back)
			require.Equal(t, uint64(tt.in), back.Bytes())
		})
	}
	require.Equal(t, 4096, (4 * KiB).Int())
	require.Equal(t, int(^uint(0)>>1), ByteSize(1<<64-1).Int())
}

func TestTOMLIntegerByteSize(t *testing.T) {
	cfg := defaultTestConfig()
	require.NoError(t, Decode([]byte("cache_size = 1048576\n"), "x", &cfg))
	require.Equal(t, MiB, cfg.CacheSize)
}

func TestSecretNeverPrinted(t *testing.T) {
	const value = "hunter2-s3cr3t"
	s := Secret(value)
	type holder struct {
		Name  string
		Token Secret
	}
	h := holder{Name: "svc", Token: s}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s"} {
		outputs["fmt "+verb] = fmt.Sprintf(verb, s)
		outputs["fmt struct "+verb] = fmt.Sprintf(verb, h)
		outputs["fmt ptr struct "+verb] = fmt.Sprintf(verb, &h)
	}
	outputs["Sprint"] = fmt.Sprint(s)
	outputs["Sprintln"] = fmt.Sprintln(h)

	j, err := json.Marshal(h)
	require.NoError(t, err)
	outputs["json"] = string(j)

	var tb bytes.Buffer
	require.NoError(t, toml.NewEncoder(&tb).Encode(h))
	outputs["toml"] = tb.String()

	for _, handler := range []func(io.Writer) slog.Handler{
		func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
		func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
	} {
		var lb bytes.Buffer
		slog.New(handler(&lb)).Info("start", "token", s, "cfg", h)
		outputs[fmt.Sprintf("slog %T", handler(io.Discard))] = lb.String()
	}

	for name, out := range outputs {
		require.NotContains(t, out, value, name)
		require.NotContains(t, out, fmt.Sprintf("%x", value), name)
	}
	require.Contains(t, outputs["fmt %v"], "[redacted]")
	require.Contains(t, outputs["json"], `"Token":"[redacted]"`)
	require.Equal(t, `"[redacted]"`, outputs["fmt %#v"])
	require.Equal(t, value, s.Value())
	require.True(t, s.IsSet())

	var empty Secret
	require.Equal(t, "", empty.String())
	require.Equal(t, "", fmt.Sprintf("%v", empty))
	require.False(t, empty.IsSet())
}

func TestSecretNotFromText(t *testing.T) {
	var s Secret
	require.ErrorIs(t, s.UnmarshalText([]byte("x")), ErrSecretNotAllowed)

	type withSecret struct {
		Token Secret `toml:"token"`
	}
	var w withSecret
	err := Decode([]byte("token = \"hunter2\"\n"), "svc.toml", &w)
	require.ErrorIs(t, err, ErrDecode)
	require.Contains(t, err.Error(), "not from config files")
	require.Empty(t, w.Token.Value())
}

func TestSecretFromEnvOrFile(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(secretFile, []byte("from-file\n"), 0o600))

	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr error
		errHas  string
	}{
		{name: "neither", want: ""},
		{name: "env", env: map[string]string{"T_TOKEN": "from-env"}, want: "from-env"},
		{name: "file", env: map[string]string{"T_TOKEN_FILE": secretFile}, want: "from-file"},
		{name: "empty env ignored", env: map[string]string{"T_TOKEN": "", "T_TOKEN_FILE": secretFile}, want: "from-file"},
		{name: "both", env: map[string]string{"T_TOKEN": "a", "T_TOKEN_FILE": secretFile}, wantErr: ErrSecretConflict},
		{name: "missing file", env: map[string]string{"T_TOKEN_FILE": filepath.Join(dir, "nope")}, wantErr: fs.ErrNotExist, errHas: "T_TOKEN_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("T_TOKEN", "")
			t.Setenv("T_TOKEN_FILE", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := SecretFromEnvOrFile("T_TOKEN", "T_TOKEN_FILE")
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.ErrorContains(t, err, tt.errHas)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Value())
		})
	}

	got, err := SecretFromEnvOrFile("", "")
	require.NoError(t, err)
	require.False(t, got.IsSet())
}

func TestProblems(t *testing.T) {
	var p Problems
	require.NoError(t, p.Err())
	require.Zero(t, p.Len())

	cause := errors.New("address already in use")
	p.Addf("listen_addr", "cannot bind: %w", cause)
	p.Addf("server.workers", "must be at least %d", 1)
	err := p.Err()
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorIs(t, err, cause)
	require.Equal(t, 2, p.Len())
	require.Equal(t, "config: listen_addr: cannot bind: address already in use\nconfig: server.workers: must be at least 1", err.Error())

	// Err is a snapshot.
	p.Addf("x", "later")
	require.NotContains(t, err.Error(), "later")
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "4096", "8KiB", "64 MB", "1GiB", "16384PiB", "1.5GiB", "", "kB", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			require.ErrorIs(t, err, ErrSyntax)
			return
		}
		back, err := ParseByteSize(v.String())
		require.NoError(t, err)
		require.Equal(t, v, back)
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"listen_addr = \"x\"\n[server]\nworkers = 3\n",
		"timeout = \"5m\"\ncache_size = \"1GiB\"\n",
		"[extra]\na = 1\n",
		"timeout = 5\n",
		"= broken",
		"[server]\nworkers = \"x\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaultTestConfig()
		err := Decode(data, "fuzz.toml", &cfg)
		if err != nil && !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnknownKeys) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
