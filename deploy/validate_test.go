package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// repoRoot is the Strata checkout holding this module.
const repoRoot = ".."

var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// decodeAll strictly decodes every document of a multi-document YAML stream.
func decodeAll(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, obj)
	}
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewTag  string `json:"newTag"`
		NewName string `json:"newName"`
	} `json:"images"`
}

func loadKustomization(t *testing.T) kustomization {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.UnmarshalStrict(data, &k))
	require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	require.Equal(t, "Kustomization", k.Kind)
	return k
}

// manifests decodes every resource of the kustomization.
func manifests(t *testing.T) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	for _, res := range loadKustomization(t).Resources {
		data, err := os.ReadFile(res)
		require.NoError(t, err)
		got, err := decodeAll(data)
		require.NoError(t, err, res)
		require.NotEmpty(t, got, res)
		objs = append(objs, got...)
	}
	return objs
}

func TestDecodeAllCatchesMistakes(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  portz: []\n", `unknown field "spec.portz"`},
		{"wrong type", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  replicas: \"one\"\n", "cannot unmarshal"},
		{"unknown kind", "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n", "no kind"},
		{"second document", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Service\nmetadta: {}\n", "document 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll([]byte(tt.yaml))
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestKustomizationReferencesExist(t *testing.T) {
	k := loadKustomization(t)
	require.NotEmpty(t, k.Resources)
	for _, p := range k.Resources {
		require.FileExists(t, p)
	}
	require.Len(t, k.ConfigMapGenerator, 1)
	for _, p := range k.ConfigMapGenerator[0].Files {
		require.FileExists(t, p)
	}
}

// TestKustomizeOutputDecodes renders the kustomization with kubectl's
// built-in kustomize (offline) and decodes the result strictly.
func TestKustomizeOutputDecodes(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: the per-file decode still runs")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	objs, err := decodeAll(out)
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetObjectKind().GroupVersionKind().Kind]++
		if cm, ok := o.(*corev1.ConfigMap); ok {
			require.True(t, strings.HasPrefix(cm.Name, "strata-config-"), "generated name with hash: %s", cm.Name)
			require.Len(t, cm.Data, 4)
		}
	}
	require.Equal(t, map[string]int{"ConfigMap": 1, "Deployment": 2, "StatefulSet": 2, "Service": 4}, kinds)
}

// workload is the part of a Deployment or StatefulSet the checks need.
type workload struct {
	name     string
	selector map[string]string
	pod      corev1.PodTemplateSpec
	claims   []string
}

func workloads(t *testing.T, objs []runtime.Object) ([]workload, []*corev1.Service) {
	var ws []workload
	var svcs []*corev1.Service
	for _, o := range objs {
		switch x := o.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{name: x.Name, selector: x.Spec.Selector.MatchLabels, pod: x.Spec.Template})
		case *appsv1.StatefulSet:
			w := workload{name: x.Name, selector: x.Spec.Selector.MatchLabels, pod: x.Spec.Template}
			for _, c := range x.Spec.VolumeClaimTemplates {
				w.claims = append(w.claims, c.Name)
			}
			require.Equal(t, x.Name, x.Spec.ServiceName)
			ws = append(ws, w)
		case *corev1.Service:
			svcs = append(svcs, x)
		default:
			t.Fatalf("unexpected kind %T", o)
		}
	}
	return ws, svcs
}

func TestManifestsHangTogether(t *testing.T) {
	k := loadKustomization(t)
	configFiles := map[string]bool{}
	for _, f := range k.ConfigMapGenerator[0].Files {
		configFiles[filepath.Base(f)] = true
	}
	ws, svcs := workloads(t, manifests(t))
	require.Len(t, ws, 4)
	for _, w := range ws {
		t.Run(w.name, func(t *testing.T) {
			for k, v := range w.selector {
				require.Equal(t, v, w.pod.Labels[k], "selector matches the pod labels")
			}
			sc := w.pod.Spec.SecurityContext
			require.NotNil(t, sc)
			require.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "postgres (walredo) refuses root; every image runs as uid 10001")
			vols := map[string]corev1.Volume{}
			for _, v := range w.pod.Spec.Volumes {
				vols[v.Name] = v
			}
			require.Len(t, w.pod.Spec.Containers, 1)
			c := w.pod.Spec.Containers[0]
			require.Equal(t, "strata/"+w.name, c.Image)

			ports := map[string]int32{}
			numbers := map[int32]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
				numbers[p.ContainerPort] = true
			}
			require.Contains(t, ports, "metrics")

			require.NotNil(t, c.ReadinessProbe, "readiness probe")
			require.NotNil(t, c.LivenessProbe, "liveness probe")
			for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				if p == nil {
					continue
				}
				switch {
				case p.GRPC != nil:
					require.True(t, numbers[p.GRPC.Port], "gRPC probe port %d is a container port", p.GRPC.Port)
				case p.TCPSocket != nil:
					requirePort(t, p.TCPSocket.Port, ports, numbers)
				case p.HTTPGet != nil:
					requirePort(t, p.HTTPGet.Port, ports, numbers)
					require.Equal(t, "/healthz", p.HTTPGet.Path)
				default:
					t.Fatalf("probe without a handler")
				}
			}

			req, lim := c.Resources.Requests, c.Resources.Limits
			require.False(t, req.Cpu().IsZero(), "cpu request")
			require.False(t, req.Memory().IsZero(), "memory request")
			require.False(t, lim.Memory().IsZero(), "memory limit")
			require.True(t, lim.Memory().Cmp(*req.Memory()) >= 0, "memory limit >= request")

			for _, m := range c.VolumeMounts {
				_, isVol := vols[m.Name]
				require.True(t, isVol || slices.Contains(w.claims, m.Name), "mount %s has a volume", m.Name)
			}
			cfg := vols["config"]
			require.NotNil(t, cfg.ConfigMap, "config volume is the generated ConfigMap")
			require.Equal(t, "strata-config", cfg.ConfigMap.Name)

			require.Len(t, c.Args, 2)
			require.Equal(t, "--config", c.Args[0])
			require.True(t, configFiles[filepath.Base(c.Args[1])], "%s is generated into the ConfigMap", c.Args[1])
			listen, metrics := configPorts(t, filepath.Join("config", filepath.Base(c.Args[1])))
			require.True(t, numbers[listen], "listen_addr port %d is a container port", listen)
			require.Equal(t, metrics, ports["metrics"], "metrics_addr port")

			for _, e := range c.Env {
				if strings.HasSuffix(e.Name, "_FILE") {
					requireMounted(t, e.Value, c.VolumeMounts)
				}
			}

			var svc *corev1.Service
			for _, s := range svcs {
				if s.Name == w.name {
					svc = s
				}
			}
			require.NotNil(t, svc, "a Service named like the workload (the configs address peers by it)")
			for k, v := range svc.Spec.Selector {
				require.Equal(t, v, w.pod.Labels[k])
			}
			for _, p := range svc.Spec.Ports {
				require.Equal(t, intstr.String, p.TargetPort.Type, "target ports by name")
				require.Equal(t, p.Port, ports[p.TargetPort.StrVal], "service port %s equals the container port", p.Name)
			}
		})
	}
}

func requirePort(t *testing.T, p intstr.IntOrString, named map[string]int32, numbers map[int32]bool) {
	t.Helper()
	if p.Type == intstr.String {
		require.Contains(t, named, p.StrVal)
		return
	}
	require.True(t, numbers[p.IntVal], "port %d", p.IntVal)
}

func requireMounted(t *testing.T, path string, mounts []corev1.VolumeMount) {
	t.Helper()
	for _, m := range mounts {
		if strings.HasPrefix(path, m.MountPath+"/") {
			return
		}
	}
	t.Fatalf("%s is under no volume mount", path)
}

var addrRE = regexp.MustCompile(`(?m)^\s*(listen_addr|metrics_addr)\s*=\s*"[^"]*:(\d+)"`)

// configPorts reads the listen and metrics ports of a service's TOML file.
func configPorts(t *testing.T, path string) (listen, metrics int32) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, m := range addrRE.FindAllStringSubmatch(string(data), -1) {
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		if m[1] == "listen_addr" {
			listen = int32(n)
		} else {
			metrics = int32(n)
		}
	}
	require.NotZero(t, listen, "%s: listen_addr", path)
	require.NotZero(t, metrics, "%s: metrics_addr", path)
	return listen, metrics
}
