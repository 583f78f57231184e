package check

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The kustomizations that must build, relative to the repository root.
var kustomizations = []string{"deploy/k8s", "deploy/k8s/base", "deploy/k8s/overlays/dev"}

// manifests is the output of one kustomize build, decoded into the API types.
type manifests struct {
	Namespaces   map[string]*corev1.Namespace
	ConfigMaps   map[string]*corev1.ConfigMap
	Secrets      map[string]*corev1.Secret
	Services     map[string]*corev1.Service
	Deployments  map[string]*appsv1.Deployment
	StatefulSets map[string]*appsv1.StatefulSet
	PDBs         map[string]*policyv1.PodDisruptionBudget
	HPAs         map[string]*autoscalingv2.HorizontalPodAutoscaler
	namespaces   map[string]string // "Kind/name" -> metadata.namespace
}

// buildKustomization runs kustomize (krusty, the library behind `kustomize
// build` and `kubectl kustomize`) on a directory of the real file system and
// decodes every resource strictly: an unknown field (a typo such as
// "readinesProbe") or an unexpected kind fails the build.
func buildKustomization(t testing.TB, dir string) *manifests {
	t.Helper()
	m, err := kustomizeBuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func kustomizeBuild(dir string) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	m := &manifests{
		Namespaces: map[string]*corev1.Namespace{}, ConfigMaps: map[string]*corev1.ConfigMap{},
		Secrets: map[string]*corev1.Secret{}, Services: map[string]*corev1.Service{},
		Deployments: map[string]*appsv1.Deployment{}, StatefulSets: map[string]*appsv1.StatefulSet{},
		PDBs: map[string]*policyv1.PodDisruptionBudget{}, HPAs: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		namespaces: map[string]string{},
	}
	for _, r := range rm.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		gvk := r.GetApiVersion() + "/" + r.GetKind()
		name := r.GetName()
		var target any
		switch gvk {
		case "v1/Namespace":
			target = put(m.Namespaces, name)
		case "v1/ConfigMap":
			target = put(m.ConfigMaps, name)
		case "v1/Secret":
			target = put(m.Secrets, name)
		case "v1/Service":
			target = put(m.Services, name)
		case "apps/v1/Deployment":
			target = put(m.Deployments, name)
		case "apps/v1/StatefulSet":
			target = put(m.StatefulSets, name)
		case "policy/v1/PodDisruptionBudget":
			target = put(m.PDBs, name)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			target = put(m.HPAs, name)
		default:
			return nil, fmt.Errorf("%s: unexpected resource %s %s", dir, gvk, name)
		}
		if err := decodeStrict(data, target); err != nil {
			return nil, fmt.Errorf("%s: %s %s does not match the Kubernetes API: %w", dir, gvk, name, err)
		}
		m.namespaces[r.GetKind()+"/"+name] = r.GetNamespace()
	}
	return m, nil
}

// put stores a new zero value under name and returns a pointer to it.
func put[T any](m map[string]*T, name string) *T {
	v := new(T)
	m[name] = v
	return v
}

// The services' own images: ghcr.io/escqrs/<service>:<semver>.
var serviceImage = regexp.MustCompile(`^ghcr\.io/escqrs/([a-z-]+):v?[0-9]+\.[0-9]+\.[0-9]+$`)

const namespace = "escqrs"

// checkManifests returns every way one kustomize build departs from
// deploy/services.json and the deployment rules.
func checkManifests(m *manifests, spec Spec) problems {
	var pr problems

	for obj, ns := range m.namespaces {
		if !strings.HasPrefix(obj, "Namespace/") && ns != namespace {
			pr.addf("%s: namespace %q, want %q", obj, ns, namespace)
		}
	}
	if _, ok := m.Namespaces[namespace]; !ok {
		pr.addf("namespace %s is not created", namespace)
	}

	// Rules for every workload, ours and (in the dev overlay) the engines'.
	for name, d := range m.Deployments {
		pr = append(pr, checkPod("Deployment "+name, d.Spec.Template.Spec)...)
		pr = append(pr, checkSelector("Deployment "+name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)...)
		if _, ours := spec.Services[name]; !ours {
			pr.addf("Deployment %s: not a service of deploy/services.json", name)
		}
	}
	for name, s := range m.StatefulSets {
		pr = append(pr, checkPod("StatefulSet "+name, s.Spec.Template.Spec)...)
		pr = append(pr, checkSelector("StatefulSet "+name, s.Spec.Selector.MatchLabels, s.Spec.Template.Labels)...)
	}

	partitions := ""
	for _, name := range spec.Names() {
		sv := spec.Services[name]
		d, ok := m.Deployments[name]
		if !ok {
			pr.addf("Deployment %s: missing", name)
			continue
		}
		what := "Deployment " + name
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			pr.addf("%s: %d containers, want 1", what, len(pod.Containers))
			continue
		}
		c := pod.Containers[0]
		if sm := serviceImage.FindStringSubmatch(c.Image); sm == nil || sm[1] != name {
			pr.addf("%s: image %q, want ghcr.io/escqrs/%s:<version>", what, c.Image, name)
		}

		// The port, probes and Prometheus annotations agree with services.json.
		if len(c.Ports) != 1 || c.Ports[0].Name != "http" || int(c.Ports[0].ContainerPort) != sv.Port {
			pr.addf("%s: container ports %v, want one port named http = %d", what, c.Ports, sv.Port)
		}
		pr = append(pr, checkHTTPProbe(what+" readinessProbe", c.ReadinessProbe, "/readyz", sv.Port)...)
		pr = append(pr, checkHTTPProbe(what+" livenessProbe", c.LivenessProbe, "/healthz", sv.Port)...)
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(sv.Port) || ann["prometheus.io/path"] != "/metrics" {
			pr.addf("%s: prometheus.io annotations %v, want scrape=true port=%d path=/metrics", what, ann, sv.Port)
		}

		// Shutdown: preStop sleep, then SIGTERM and ~20s of draining, all
		// inside a grace period of 30s.
		if g := pod.TerminationGracePeriodSeconds; g == nil || *g != 30 {
			pr.addf("%s: terminationGracePeriodSeconds must be 30", what)
		}
		if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil ||
			l.PreStop.Sleep.Seconds < 1 || l.PreStop.Sleep.Seconds > 10 {
			pr.addf("%s: needs a preStop sleep of a few seconds", what)
		}

		// Non-root, read-only root file system.
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			pr.addf("%s: root file system must be read-only", what)
		}

		// Environment: exactly the variables of services.json, each resolvable.
		var names []string
		values := map[string]string{}
		for _, e := range c.Env {
			names = append(names, e.Name)
			v, err := resolveEnv(m, e)
			if err != nil {
				pr.addf("%s: env %s: %v", what, e.Name, err)
			}
			values[e.Name] = v
		}
		if len(c.EnvFrom) != 0 {
			pr.addf("%s: envFrom would pass variables the service does not read; list them in env", what)
		}
		pr = append(pr, checkEnvNames(what, sv, names)...)
		// A longer drain than the grace period allows would end in SIGKILL.
		if v := values["SHUTDOWN_TIMEOUT"]; v != "" && pod.TerminationGracePeriodSeconds != nil && c.Lifecycle != nil &&
			c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			d, err := time.ParseDuration(v)
			budget := time.Duration(*pod.TerminationGracePeriodSeconds-c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			if err != nil || d >= budget {
				pr.addf("%s: SHUTDOWN_TIMEOUT=%s does not fit in the grace period after the preStop sleep", what, v)
			}
		}
		if got := values["HTTP_ADDR"]; got != ":"+strconv.Itoa(sv.Port) {
			pr.addf("%s: HTTP_ADDR=%q, want \":%d\"", what, got, sv.Port)
		}
		if v, ok := values["KAFKA_PARTITIONS"]; ok {
			partitions = v
		}

		// Disruption budget for every service.
		if !hasPDB(m, d) {
			pr.addf("%s: no PodDisruptionBudget selects its pods", what)
		}

		switch sv.Role {
		case "api":
			if !hasService(m, name, d, sv.Port) {
				pr.addf("%s: no Service %s on port %d selecting its pods", what, name, sv.Port)
			}
		case "projector":
			// The HPA owns the replica count.
			if d.Spec.Replicas != nil {
				pr.addf("%s: sets replicas, which would fight its HorizontalPodAutoscaler", what)
			}
			pr = append(pr, checkHPA(m, name)...)
		}
	}

	// The HPA ceiling is the partition count: more replicas would idle.
	if partitions != "" {
		for name, h := range m.HPAs {
			if strconv.Itoa(int(h.Spec.MaxReplicas)) != partitions {
				pr.addf("HorizontalPodAutoscaler %s: maxReplicas %d != KAFKA_PARTITIONS %s", name, h.Spec.MaxReplicas, partitions)
			}
		}
	} else {
		pr.addf("no service receives KAFKA_PARTITIONS")
	}
	return pr
}

// checkPod applies the rules every workload follows: probes, requests and
// limits, pinned images, non-root.
func checkPod(what string, pod corev1.PodSpec) problems {
	var pr problems
	if len(pod.Containers) == 0 {
		pr.addf("%s: no containers", what)
	}
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		cw := fmt.Sprintf("%s container %s", what, c.Name)
		if why := imagePinned(c.Image); why != "" {
			pr.addf("%s: image %q %s", cw, c.Image, why)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
				pr.addf("%s: no %s request", cw, r)
			}
			if q, ok := c.Resources.Limits[r]; !ok || q.IsZero() {
				pr.addf("%s: no %s limit", cw, r)
			}
		}
		if m, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			if r, ok := c.Resources.Requests[corev1.ResourceMemory]; ok && r.Cmp(m) > 0 {
				pr.addf("%s: memory request above its limit", cw)
			}
		}
		if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
			pr.addf("%s: allowPrivilegeEscalation must be false", cw)
		}
		if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil || !slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL") {
			pr.addf("%s: must drop ALL capabilities", cw)
		}
	}
	for _, c := range pod.Containers {
		if c.ReadinessProbe == nil {
			pr.addf("%s container %s: no readinessProbe", what, c.Name)
		}
		if c.LivenessProbe == nil {
			pr.addf("%s container %s: no livenessProbe", what, c.Name)
		}
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		pr.addf("%s: pod must set runAsNonRoot and a non-zero runAsUser", what)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		pr.addf("%s: pod must use the RuntimeDefault seccomp profile", what)
	}
	return pr
}

func checkSelector(what string, selector, labels map[string]string) problems {
	var pr problems
	if len(selector) == 0 {
		pr.addf("%s: empty selector", what)
	}
	for k, v := range selector {
		if labels[k] != v {
			pr.addf("%s: selector %s=%s does not match its pod template", what, k, v)
		}
	}
	return pr
}

func checkHTTPProbe(what string, p *corev1.Probe, path string, port int) problems {
	var pr problems
	if p == nil || p.HTTPGet == nil {
		pr.addf("%s: want an HTTP GET %s probe", what, path)
		return pr
	}
	if p.HTTPGet.Path != path {
		pr.addf("%s: path %q, want %q", what, p.HTTPGet.Path, path)
	}
	if pp := p.HTTPGet.Port; pp.String() != "http" && pp.IntValue() != port {
		pr.addf("%s: port %s, want http (%d)", what, pp.String(), port)
	}
	return pr
}

// resolveEnv returns the value a variable will have, following references to
// ConfigMaps and Secrets of the same build (with their generated names).
func resolveEnv(m *manifests, e corev1.EnvVar) (string, error) {
	if e.ValueFrom == nil {
		return e.Value, nil
	}
	switch {
	case e.ValueFrom.ConfigMapKeyRef != nil:
		ref := e.ValueFrom.ConfigMapKeyRef
		cm, ok := m.ConfigMaps[ref.Name]
		if !ok {
			return "", fmt.Errorf("ConfigMap %s is not in the build", ref.Name)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			return "", fmt.Errorf("ConfigMap %s has no key %s", ref.Name, ref.Key)
		}
		return v, nil
	case e.ValueFrom.SecretKeyRef != nil:
		ref := e.ValueFrom.SecretKeyRef
		s, ok := m.Secrets[ref.Name]
		if !ok {
			return "", fmt.Errorf("Secret %s is not in the build", ref.Name)
		}
		if v, ok := s.Data[ref.Key]; ok {
			return string(v), nil
		}
		if v, ok := s.StringData[ref.Key]; ok {
			return v, nil
		}
		return "", fmt.Errorf("Secret %s has no key %s", ref.Name, ref.Key)
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func hasPDB(m *manifests, d *appsv1.Deployment) bool {
	for _, p := range m.PDBs {
		if p.Spec.Selector != nil && selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) &&
			(p.Spec.MinAvailable != nil || p.Spec.MaxUnavailable != nil) {
			return true
		}
	}
	return false
}

func hasService(m *manifests, name string, d *appsv1.Deployment, port int) bool {
	s, ok := m.Services[name]
	if !ok || !selects(s.Spec.Selector, d.Spec.Template.Labels) {
		return false
	}
	for _, p := range s.Spec.Ports {
		if int(p.Port) == port && (p.TargetPort.String() == "http" || p.TargetPort.IntValue() == port) {
			return true
		}
	}
	return false
}

func checkHPA(m *manifests, name string) problems {
	var pr problems
	var found *autoscalingv2.HorizontalPodAutoscaler
	for _, h := range m.HPAs {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == name {
			found = h
		}
	}
	if found == nil {
		pr.addf("Deployment %s: no HorizontalPodAutoscaler targets it", name)
		return pr
	}
	if found.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
		pr.addf("HorizontalPodAutoscaler for %s: scaleTargetRef apiVersion %q", name, found.Spec.ScaleTargetRef.APIVersion)
	}
	if found.Spec.MinReplicas == nil || *found.Spec.MinReplicas < 1 || *found.Spec.MinReplicas > found.Spec.MaxReplicas {
		pr.addf("HorizontalPodAutoscaler for %s: minReplicas must be between 1 and maxReplicas", name)
	}
	if found.Spec.MaxReplicas != 12 {
		pr.addf("HorizontalPodAutoscaler for %s: maxReplicas %d, want 12 (the partition count)", name, found.Spec.MaxReplicas)
	}
	cpu := false
	for _, mt := range found.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU {
			cpu = true
		}
	}
	if !cpu {
		pr.addf("HorizontalPodAutoscaler for %s: no CPU metric", name)
	}
	return pr
}

// checkDevOverlay: the dev overlay runs the engines in the cluster and points
// the services at them with the same addresses and images as docker-compose.yml.
func checkDevOverlay(m *manifests, spec Spec, composeEnv map[string]map[string]string, composeImages map[string]string) problems {
	var pr problems
	for _, e := range engines {
		if _, ok := m.Services[e]; !ok {
			pr.addf("dev: no Service %s", e)
		}
		st, ok := m.StatefulSets[e]
		if !ok {
			pr.addf("dev: no StatefulSet %s", e)
			continue
		}
		if img := st.Spec.Template.Spec.Containers[0].Image; img != composeImages[e] {
			pr.addf("dev: %s image %q, docker-compose.yml has %q", e, img, composeImages[e])
		}
	}
	for _, name := range spec.Names() {
		d, ok := m.Deployments[name]
		if !ok || len(d.Spec.Template.Spec.Containers) != 1 {
			continue // reported by checkManifests
		}
		get := func(k string) string {
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.Name == k {
					v, _ := resolveEnv(m, e)
					return v
				}
			}
			return ""
		}
		pr = append(pr, checkServiceEnv("dev "+name, spec.Services[name], get)...)
		for k := range engineOfVar {
			if want, ok := composeEnv[name][k]; ok && get(k) != want {
				pr.addf("dev %s: %s=%q, docker-compose.yml has %q", name, k, get(k), want)
			}
		}
	}
	return pr
}

func TestKustomizeBuilds(t *testing.T) {
	spec := loadSpec(t)
	root := repoRoot(t)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := buildKustomization(t, filepath.Join(root, filepath.FromSlash(dir)))
			checkManifests(m, spec).report(t)
		})
	}
}

func TestDevOverlayMatchesCompose(t *testing.T) {
	spec := loadSpec(t)
	root := repoRoot(t)
	p := loadCompose(t, root)
	composeEnv := map[string]map[string]string{}
	composeImages := map[string]string{}
	for name, s := range p.Services {
		composeImages[name] = s.Image
		composeEnv[name] = map[string]string{}
		for k := range s.Environment {
			composeEnv[name][k] = env(s, k)
		}
	}
	m := buildKustomization(t, filepath.Join(root, "deploy", "k8s", "overlays", "dev"))
	checkDevOverlay(m, spec, composeEnv, composeImages).report(t)

	// One projector replica is enough in dev; production keeps 2.
	for name, h := range m.HPAs {
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 1 {
			t.Errorf("dev: HorizontalPodAutoscaler %s minReplicas should be 1", name)
		}
	}
}

// A misspelt field is not silently dropped: the strict decoding rejects it.
func TestKustomizeRejectsUnknownFields(t *testing.T) {
	src := filepath.Join(repoRoot(t), "deploy", "k8s", "base")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "query-api.yaml" {
			data = bytes.Replace(data, []byte("readinessProbe:"), []byte("readinesProbe:"), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = kustomizeBuild(dir)
	if err == nil || !strings.Contains(err.Error(), "readinesProbe") {
		t.Errorf("a misspelt field was accepted: %v", err)
	}
}

// The checks must catch broken manifests, not just pass on good ones.
func TestKustomizeChecksDetectMistakes(t *testing.T) {
	spec := loadSpec(t)
	dir := filepath.Join(repoRoot(t), "deploy", "k8s", "base")
	for _, tc := range []struct {
		name   string
		mutate func(m *manifests)
		want   []string
	}{
		{"no readiness probe", func(m *manifests) {
			m.Deployments["query-api"].Spec.Template.Spec.Containers[0].ReadinessProbe = nil
		}, []string{"query-api", "readinessProbe"}},
		{"liveness on the wrong path", func(m *manifests) {
			m.Deployments["command-api"].Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Path = "/readyz"
		}, []string{"command-api", "livenessProbe", "/healthz"}},
		{"no limits", func(m *manifests) {
			m.Deployments["search-indexer"].Spec.Template.Spec.Containers[0].Resources.Limits = nil
		}, []string{"search-indexer", "limit"}},
		{"latest image", func(m *manifests) {
			m.Deployments["projector-orders"].Spec.Template.Spec.Containers[0].Image = "ghcr.io/escqrs/projector-orders:latest"
		}, []string{"projector-orders", "latest"}},
		{"missing HPA", func(m *manifests) {
			delete(m.HPAs, "projector-stats")
		}, []string{"projector-stats", "HorizontalPodAutoscaler"}},
		{"missing API Service", func(m *manifests) {
			delete(m.Services, "query-api")
		}, []string{"query-api", "Service"}},
		{"missing PDB", func(m *manifests) {
			delete(m.PDBs, "projector-orders")
		}, []string{"projector-orders", "PodDisruptionBudget"}},
		{"missing variable", func(m *manifests) {
			c := &m.Deployments["projector-stats"].Spec.Template.Spec.Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "REDIS_URL" })
		}, []string{"projector-stats", "lacks", "REDIS_URL"}},
		{"drain longer than the grace period", func(m *manifests) {
			c := &m.Deployments["projector-orders"].Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "SHUTDOWN_TIMEOUT", Value: "40s"})
		}, []string{"projector-orders", "SHUTDOWN_TIMEOUT"}},
		{"dangling ConfigMap key", func(m *manifests) {
			for _, cm := range m.ConfigMaps {
				delete(cm.Data, "ELASTICSEARCH_URL")
			}
		}, []string{"ELASTICSEARCH_URL", "no key"}},
		{"root user", func(m *manifests) {
			m.Deployments["command-api"].Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
		}, []string{"command-api", "runAsNonRoot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := buildKustomization(t, dir)
			if pr := checkManifests(m, spec); len(pr) != 0 {
				t.Fatalf("unmutated base already has problems: %q", pr)
			}
			tc.mutate(m)
			if pr := checkManifests(m, spec); !pr.contains(tc.want...) {
				t.Errorf("problem %q not reported; got %q", tc.want, pr)
			}
		})
	}
}
