package check

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The fixed facts of DESIGN.md: the five services and their ports.
var designPorts = map[string]int{
	"command-api":      8080,
	"query-api":        8081,
	"projector-orders": 9101,
	"projector-stats":  9102,
	"search-indexer":   9103,
}

var (
	envName    = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	metricName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

func checkSpec(spec Spec) problems {
	var pr problems
	if !sameSet(spec.Names(), mapsKeys(designPorts)) {
		pr.addf("services.json: services %v, want %v", spec.Names(), sortedCopy(mapsKeys(designPorts)))
	}
	for name, sv := range spec.Services {
		if want := designPorts[name]; sv.Port != want {
			pr.addf("services.json %s: port %d, DESIGN.md says %d", name, sv.Port, want)
		}
		if sv.Role != "api" && sv.Role != "projector" {
			pr.addf("services.json %s: role %q, want api or projector", name, sv.Role)
		}
		if (sv.Role == "api") != strings.HasSuffix(name, "-api") {
			pr.addf("services.json %s: role %q does not fit the name", name, sv.Role)
		}
		for _, e := range []string{"HTTP_ADDR", "LOG_LEVEL", "DATABASE_URL"} {
			if !slices.Contains(sv.Env, e) {
				pr.addf("services.json %s: env lacks %s", name, e)
			}
		}
		if sv.Role == "projector" && !slices.Contains(sv.Env, "KAFKA_BROKERS") {
			pr.addf("services.json %s: a projector reads KAFKA_BROKERS", name)
		}
		for _, e := range sv.OptionalEnv {
			if slices.Contains(sv.Env, e) {
				pr.addf("services.json %s: %s is in both env and optional_env", name, e)
			}
		}
		for _, e := range slices.Concat(sv.Env, sv.OptionalEnv) {
			if !envName.MatchString(e) {
				pr.addf("services.json %s: %q is not an environment variable name", name, e)
			}
		}
		if len(slices.Compact(sortedCopy(sv.Env))) != len(sv.Env) {
			pr.addf("services.json %s: duplicate env names", name)
		}
		for _, d := range sv.DependsOn {
			if !slices.Contains(engines, d) {
				pr.addf("services.json %s: depends on unknown engine %q", name, d)
			}
		}
		// Every address it reads needs that engine, and vice versa.
		for v, engine := range engineOfVar {
			if slices.Contains(sv.Env, v) != slices.Contains(sv.DependsOn, engine) {
				pr.addf("services.json %s: env %s and depends_on %s must go together", name, v, engine)
			}
		}
	}
	if len(spec.Metrics) == 0 {
		pr.addf("services.json: no metrics listed")
	}
	for _, m := range spec.Metrics {
		if !metricName.MatchString(m.Name) {
			pr.addf("services.json metric %q: not a Prometheus metric name", m.Name)
		}
		switch m.Type {
		case "counter":
			if !strings.HasSuffix(m.Name, "_total") {
				pr.addf("services.json metric %s: a counter's name ends in _total", m.Name)
			}
		case "gauge", "histogram", "summary":
		default:
			pr.addf("services.json metric %s: unknown type %q", m.Name, m.Type)
		}
		if len(m.ExposedBy) == 0 {
			pr.addf("services.json metric %s: exposed_by is empty", m.Name)
		}
		for _, s := range m.ExposedBy {
			if _, ok := spec.Services[s]; !ok {
				pr.addf("services.json metric %s: exposed by unknown service %q", m.Name, s)
			}
		}
	}
	return pr
}

func mapsKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestServicesJSON(t *testing.T) {
	spec := loadSpec(t)
	checkSpec(spec).report(t)

	// The metric names the brief fixes, with their labels.
	want := map[string][]string{
		"projector_consumer_lag":           {"group", "topic", "partition"},
		"projection_lag_events":            {"projection"},
		"eventstore_appended_events_total": {},
		"http_request_duration_seconds":    {"route"},
	}
	got := map[string][]string{}
	for _, m := range spec.Metrics {
		got[m.Name] = m.Labels
	}
	for name, labels := range want {
		l, ok := got[name]
		if !ok {
			t.Errorf("services.json: metric %s missing", name)
			continue
		}
		for _, lb := range labels {
			if !slices.Contains(l, lb) {
				t.Errorf("services.json: metric %s lacks label %s", name, lb)
			}
		}
	}
}

func TestServicesJSONChecksDetectMistakes(t *testing.T) {
	if _, err := parseSpec([]byte(`{"command-api": {"port": 8080, "envs": []}}`)); err == nil {
		t.Error("a misspelt field was accepted")
	}
	spec := loadSpec(t)
	s := spec.Services["query-api"]
	s.Env = append(slices.Clone(s.Env), "KAFKA_BROKERS") // without depending on kafka
	spec.Services["query-api"] = s
	if pr := checkSpec(spec); !pr.contains("query-api", "KAFKA_BROKERS") {
		t.Errorf("inconsistent env/depends_on not reported: %q", pr)
	}
}

// dashboard is the part of a Grafana dashboard model the test reads.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		GridPos *struct {
			W int `json:"w"`
			H int `json:"h"`
		} `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The PromQL expressions the brief asks for, verbatim.
var wantExprs = []string{
	"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket[5m])))",
	"rate(eventstore_appended_events_total[1m])",
	"projector_consumer_lag",
	"projection_lag_events",
}

func checkDashboard(data []byte, spec Spec) problems {
	var pr problems
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		pr.addf("dashboard.json: %v", err)
		return pr
	}
	if d.Title == "" || d.UID == "" {
		pr.addf("dashboard.json: needs a title and a uid")
	}
	var all []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			pr.addf("dashboard.json: duplicate panel id %d", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || len(p.Targets) == 0 {
			pr.addf("dashboard.json: panel %q needs a type, a gridPos and targets", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.RefID == "" || tg.Expr == "" {
				pr.addf("dashboard.json: panel %q has a target without refId or expr", p.Title)
			}
			// Each query reads metrics the services expose.
			known := false
			for _, m := range spec.Metrics {
				if regexp.MustCompile(`\b` + m.Name + `(_bucket|_count|_sum)?\b`).MatchString(tg.Expr) {
					known = true
				}
			}
			if !known {
				pr.addf("dashboard.json: panel %q queries %q, which uses no metric of deploy/services.json", p.Title, tg.Expr)
			}
			all = append(all, tg.Expr)
		}
	}
	joined := strings.Join(all, "\n")
	for _, e := range wantExprs {
		if !strings.Contains(joined, e) {
			pr.addf("dashboard.json: no panel queries %s", e)
		}
	}
	for _, m := range spec.Metrics {
		if !strings.Contains(joined, m.Name) {
			pr.addf("dashboard.json: metric %s has no panel", m.Name)
		}
	}
	return pr
}

func TestGrafanaDashboard(t *testing.T) {
	checkDashboard(readFile(t, "deploy/grafana/dashboard.json"), loadSpec(t)).report(t)
}

func TestGrafanaChecksDetectMistakes(t *testing.T) {
	good := string(readFile(t, "deploy/grafana/dashboard.json"))
	bad := strings.ReplaceAll(good, "projector_consumer_lag", "consumer_lag")
	if pr := checkDashboard([]byte(bad), loadSpec(t)); !pr.contains("projector_consumer_lag") {
		t.Errorf("a dashboard without the consumer-lag metric passed: %q", pr)
	}
}

// The KEDA example is not built by kustomize; check that it is a well-formed
// ScaledObject for a projector with the same ceiling as the HPAs.
func TestKEDAExample(t *testing.T) {
	var so struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			ScaleTargetRef struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"scaleTargetRef"`
			MaxReplicaCount int `json:"maxReplicaCount"`
			Triggers        []struct {
				Type     string            `json:"type"`
				Metadata map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/k8s/examples/keda-scaledobject.yaml"), &so); err != nil {
		t.Fatal(err)
	}
	spec := loadSpec(t)
	if so.APIVersion != "keda.sh/v1alpha1" || so.Kind != "ScaledObject" {
		t.Errorf("not a KEDA ScaledObject: %s %s", so.APIVersion, so.Kind)
	}
	target := so.Spec.ScaleTargetRef.Name
	if sv, ok := spec.Services[target]; !ok || sv.Role != "projector" || so.Spec.ScaleTargetRef.Kind != "Deployment" {
		t.Errorf("scaleTargetRef %s/%s is not a projector Deployment", so.Spec.ScaleTargetRef.Kind, target)
	}
	if so.Spec.MaxReplicaCount != 12 {
		t.Errorf("maxReplicaCount %d, want 12 (the partition count)", so.Spec.MaxReplicaCount)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("want one kafka trigger, got %+v", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	// DESIGN.md: each projector's consumer group is named after it.
	if md["consumerGroup"] != target || md["bootstrapServers"] == "" || md["lagThreshold"] == "" {
		t.Errorf("kafka trigger metadata %v: want consumerGroup=%s, bootstrapServers and lagThreshold", md, target)
	}
	// The same brokers as the production base gives the services.
	base := buildKustomization(t, filepath.Join(repoRoot(t), "deploy", "k8s", "base"))
	for _, cm := range base.ConfigMaps {
		if b, ok := cm.Data["KAFKA_BROKERS"]; ok && b != md["bootstrapServers"] {
			t.Errorf("bootstrapServers %q, the base ConfigMap has KAFKA_BROKERS=%q", md["bootstrapServers"], b)
		}
	}
}
