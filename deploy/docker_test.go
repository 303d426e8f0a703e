package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func parseDockerfile(data string) []instruction {
	var out []instruction
	var cur *instruction
	for i, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if cur == nil && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur != nil && strings.HasPrefix(line, "#") {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		line = strings.TrimSuffix(line, `\`)
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + line
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

type dockerfile struct {
	stages []string
	ins    []instruction
}

func loadDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile("docker/Dockerfile")
	require.NoError(t, err)
	df := dockerfile{ins: parseDockerfile(string(data))}
	fromRE := regexp.MustCompile(`(?i)^\S+\s+AS\s+(\S+)$`)
	for _, in := range df.ins {
		if in.cmd == "FROM" {
			m := fromRE.FindStringSubmatch(in.args)
			require.NotNil(t, m, "line %d: every stage is named", in.line)
			df.stages = append(df.stages, m[1])
		}
	}
	return df
}

func TestParseDockerfile(t *testing.T) {
	ins := parseDockerfile("# c\nFROM a AS b\nRUN x \\\n  # inner comment\n  y\nCOPY s d\n")
	require.Equal(t, []instruction{
		{line: 2, cmd: "FROM", args: "a AS b"},
		{line: 3, cmd: "RUN", args: "x y"},
		{line: 6, cmd: "COPY", args: "s d"},
	}, ins)
}

// TestDockerfile checks what a build would trip over first: COPY sources
// that do not exist in the build context (the repository root), --from
// stages that are not defined before, go build paths that moved, and the
// config files the entrypoints name.
func TestDockerfile(t *testing.T) {
	df := loadDockerfile(t)
	require.Subset(t, df.stages, []string{"build", "ext", "runtime", "pageserver", "walredo", "safekeeper-bridge", "pgproxy", "stratactl"})
	seen := map[string]bool{}
	buildPathRE := regexp.MustCompile(`\b(?:services/[a-z-]+/cmd/[a-z-]+|cmd/stratactl)\b`)
	configRE := regexp.MustCompile(`/etc/strata/([a-z-]+\.toml)`)
	for _, in := range df.ins {
		switch in.cmd {
		case "FROM":
			fields := strings.Fields(in.args)
			stage := fields[len(fields)-1]
			require.False(t, seen[stage], "line %d: stage %s defined twice", in.line, stage)
			seen[stage] = true
		case "COPY":
			var from string
			var paths []string
			for _, f := range strings.Fields(in.args) {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					from = v
					continue
				}
				if strings.HasPrefix(f, "--") {
					continue
				}
				paths = append(paths, f)
			}
			require.GreaterOrEqual(t, len(paths), 2, "line %d: COPY needs a source and a destination", in.line)
			if from != "" {
				require.True(t, seen[from], "line %d: COPY --from=%s names no earlier stage", in.line, from)
				continue
			}
			for _, src := range paths[:len(paths)-1] {
				if src == "." {
					continue
				}
				_, err := os.Stat(filepath.Join(repoRoot, src))
				require.NoError(t, err, "line %d: COPY source %s is not in the build context", in.line, src)
			}
		case "RUN":
			for _, p := range buildPathRE.FindAllString(in.args, -1) {
				require.DirExists(t, filepath.Join(repoRoot, p), "line %d", in.line)
			}
			if strings.Contains(in.args, "make -C /src/services/walredo/pgext") {
				require.FileExists(t, filepath.Join(repoRoot, "services/walredo/pgext/Makefile"))
			}
		case "ENTRYPOINT":
			for _, m := range configRE.FindAllStringSubmatch(in.args, -1) {
				require.FileExists(t, filepath.Join("config", m[1]), "line %d", in.line)
			}
		}
	}
}

type composeFile struct {
	Services map[string]struct {
		Image string `json:"image"`
		Build *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
			Target     string `json:"target"`
		} `json:"build"`
		Ports       []string `json:"ports"`
		Volumes     []string `json:"volumes"`
		Healthcheck *struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
		DependsOn []string `json:"depends_on"`
		Profiles  []string `json:"profiles"`
	} `json:"services"`
}

// renderedCompose is the compose file as docker-compose resolves it
// (anchors and merges expanded), parsed.
func renderedCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	var c composeFile
	// sigs.k8s.io/yaml goes through JSON: YAML anchors and << merges are
	// expanded by the YAML parser first.
	require.NoError(t, yaml.Unmarshal(data, &c))
	return c
}

func TestComposeFile(t *testing.T) {
	c := renderedCompose(t)
	df := loadDockerfile(t)
	for _, name := range []string{"primary", "pageserver", "walredo", "safekeeper-bridge", "pgproxy"} {
		require.Contains(t, c.Services, name)
	}
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			if s.Build != nil {
				require.Contains(t, df.stages, s.Build.Target)
				require.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
			}
			if len(s.Profiles) == 0 {
				require.NotNil(t, s.Healthcheck, "every running service has a health check")
				require.NotEmpty(t, s.Healthcheck.Test)
			}
			for _, v := range s.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if strings.HasPrefix(src, ".") {
					require.DirExists(t, src)
				}
			}
			if s.Build == nil || s.Build.Target == "stratactl" {
				return
			}
			listen, metrics := configPorts(t, filepath.Join("config", s.Build.Target+".toml"))
			published := map[string]bool{}
			for _, p := range s.Ports {
				parts := strings.Split(p, ":")
				published[parts[len(parts)-1]] = true
			}
			require.True(t, published[itoa(metrics)], "metrics port %d published", metrics)
			if s.Healthcheck != nil {
				joined := strings.Join(s.Healthcheck.Test, " ")
				require.Contains(t, joined, itoa(listen), "health check probes the service's port")
			}
		})
	}
}

// TestComposeConfig runs Debian's docker-compose 1.29, which validates the
// file against the compose schema offline (no engine needed).
func TestComposeConfig(t *testing.T) {
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not installed (apt-get install docker-compose): schema check skipped")
	}
	out, err := exec.Command(dc, "-f", "compose.yaml", "config", "-q").CombinedOutput()
	require.NoError(t, err, string(out))

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("version: \"3.9\"\nservices:\n  x:\n    image: a\n    ports: 5\n"), 0o600))
	out, err = exec.Command(dc, "-f", bad, "config", "-q").CombinedOutput()
	require.Error(t, err, "docker-compose must reject a bad file: %s", out)
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
