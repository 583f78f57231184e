// Package check verifies the deployment files of the repository (Dockerfile,
// docker-compose.yml, deploy/k8s, deploy/grafana) without a Docker engine or a
// Kubernetes cluster: the compose file is loaded with compose-go (the loader
// docker compose itself uses), the kustomizations are built with kustomize's
// krusty (what kubectl kustomize runs) and decoded strictly into the
// Kubernetes API types.
//
// deploy/services.json is the reference: which variables each service reads,
// its port and the engines it depends on. Every file here is compared with it.
//
// This is a separate Go module so that those heavy dependencies stay out of
// the main module. Run: cd deploy/check && go test ./...
package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The engines the services may depend on; their names are also the compose
// service names and the dev overlay's Service names.
var engines = []string{"postgres", "kafka", "redis", "elasticsearch"}

// Service is one entry of deploy/services.json.
type Service struct {
	Role string `json:"role"` // "api" or "projector"
	Port int    `json:"port"`
	// Env: the variables every deployment sets for the service.
	Env []string `json:"env"`
	// OptionalEnv: tuning variables the service also reads, with defaults;
	// a deployment may set them but need not.
	OptionalEnv []string `json:"optional_env"`
	DependsOn   []string `json:"depends_on"`
}

// checkEnvNames compares the variables a deployment file sets for a service
// with deploy/services.json: all of "env", nothing outside "env" and
// "optional_env".
func checkEnvNames(what string, sv Service, names []string) problems {
	var pr problems
	var missing, unknown []string
	for _, e := range sv.Env {
		if !slices.Contains(names, e) {
			missing = append(missing, e)
		}
	}
	for _, n := range names {
		if !slices.Contains(sv.Env, n) && !slices.Contains(sv.OptionalEnv, n) {
			unknown = append(unknown, n)
		}
	}
	if len(missing) > 0 {
		pr.addf("%s: environment lacks %v (deploy/services.json env)", what, missing)
	}
	if len(unknown) > 0 {
		pr.addf("%s: environment sets %v, which the service does not read (deploy/services.json)", what, unknown)
	}
	if len(slices.Compact(sortedCopy(names))) != len(names) {
		pr.addf("%s: environment sets a variable twice", what)
	}
	return pr
}

// Metric is one entry of the "metrics" list in deploy/services.json.
type Metric struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Labels    []string `json:"labels"`
	ExposedBy []string `json:"exposed_by"`
}

// Spec is deploy/services.json. The file's top level maps each service name to
// a Service, plus the reserved key "metrics".
type Spec struct {
	Services map[string]Service
	Metrics  []Metric
}

// Names returns the service names, sorted.
func (s Spec) Names() []string {
	names := make([]string, 0, len(s.Services))
	for n := range s.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// repoRoot is the repository root: deploy/check is two levels below it.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "services.json")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeStrict decodes JSON, rejecting unknown fields (catches typos).
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}

func parseSpec(data []byte) (Spec, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Spec{}, err
	}
	spec := Spec{Services: map[string]Service{}}
	for key, val := range raw {
		if key == "metrics" {
			if err := decodeStrict(val, &spec.Metrics); err != nil {
				return Spec{}, fmt.Errorf("metrics: %w", err)
			}
			continue
		}
		var s Service
		if err := decodeStrict(val, &s); err != nil {
			return Spec{}, fmt.Errorf("%s: %w", key, err)
		}
		spec.Services[key] = s
	}
	return spec, nil
}

func loadSpec(t testing.TB) Spec {
	t.Helper()
	spec, err := parseSpec(readFile(t, "deploy/services.json"))
	if err != nil {
		t.Fatalf("deploy/services.json: %v", err)
	}
	return spec
}

// problems collects failed expectations so that a check reports all of them
// at once; the checks return them so tests can also assert that broken input
// IS reported (see the *_Detects* tests).
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) report(t testing.TB) {
	t.Helper()
	for _, s := range p {
		t.Error(s)
	}
}

// contains reports whether some problem contains all of the substrings.
func (p problems) contains(subs ...string) bool {
	for _, s := range p {
		ok := true
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}

func sameSet(a, b []string) bool { return slices.Equal(sortedCopy(a), sortedCopy(b)) }

// pinnedTag matches a version-like tag: starts with a digit or "v<digit>".
var pinnedTag = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*([-.+_][A-Za-z0-9.+_-]+)?$`)

// imagePinned reports why an image reference is not pinned to a version, or "".
// Accepted: "name:<version-like tag>", optionally with "@sha256:<digest>", or a
// digest alone. Rejected: no tag, ":latest", or a non-version tag (such as
// ":stable"), unless a digest pins it.
func imagePinned(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !regexp.MustCompile(`^sha256:[a-f0-9]{64}$`).MatchString(digest) {
		return "malformed digest"
	}
	// The tag is after the last ':' that comes after the last '/' (a ':'
	// before that belongs to a registry port).
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag = name[i+1:]
	}
	switch {
	case tag == "latest":
		return "uses :latest"
	case hasDigest:
		return ""
	case tag == "":
		return "has no tag"
	case !pinnedTag.MatchString(tag):
		return fmt.Sprintf("tag %q is not a version", tag)
	}
	return ""
}

func TestImagePinned(t *testing.T) {
	for ref, wantOK := range map[string]bool{
		"postgres:16.6":                              true,
		"apache/kafka:3.9.1":                         true,
		"golang:1.26.8-bookworm":                     true,
		"ghcr.io/escqrs/query-api:0.1.0":             true,
		"localhost:5000/x:1.2":                       true,
		"postgres@sha256:" + strings.Repeat("a", 64): true,
		"postgres":                                   false,
		"postgres:latest":                            false,
		"redis:alpine":                               false,
		"localhost:5000/x":                           false,
	} {
		if got := imagePinned(ref) == ""; got != wantOK {
			t.Errorf("imagePinned(%q) ok=%v, want %v (%s)", ref, got, wantOK, imagePinned(ref))
		}
	}
}
