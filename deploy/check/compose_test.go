package check

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads and validates a compose file exactly as `docker compose`
// does (schema validation, interpolation, normalisation, consistency checks
// such as depends_on targets). The process environment is not used, so the
// result does not depend on the machine running the test.
func loadCompose(t testing.TB, dir string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

// checkCompose returns every way the project departs from deploy/services.json
// and the rules in DESIGN.md section 7.
func checkCompose(p *types.Project, spec Spec) problems {
	var pr problems

	// Exactly the engines and the services, nothing else.
	want := append(slices.Clone(engines), spec.Names()...)
	if !sameSet(p.ServiceNames(), want) {
		pr.addf("compose services are %v, want %v", sortedCopy(p.ServiceNames()), sortedCopy(want))
	}

	// Engines: official images pinned by version, each with a healthcheck.
	wantImage := map[string]string{
		"postgres":      "postgres:16.",
		"kafka":         "apache/kafka:3.9.",
		"redis":         "redis:7.",
		"elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:7.17.",
	}
	for _, name := range engines {
		s, ok := p.Services[name]
		if !ok {
			pr.addf("engine %s: missing", name)
			continue
		}
		if why := imagePinned(s.Image); why != "" {
			pr.addf("engine %s: image %q %s", name, s.Image, why)
		}
		if !strings.HasPrefix(s.Image, wantImage[name]) {
			pr.addf("engine %s: image %q, want %s<patch>", name, s.Image, wantImage[name])
		}
		if s.Build != nil {
			pr.addf("engine %s: must use the official image, not a build", name)
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
			pr.addf("engine %s: no healthcheck", name)
		}
	}
	for _, name := range []string{"postgres", "kafka", "elasticsearch"} {
		if !hasNamedVolume(p, name) {
			pr.addf("engine %s: its data is not on a named volume", name)
		}
	}

	// Postgres credentials match the DATABASE_URL the services get.
	if pg, ok := p.Services["postgres"]; ok {
		for k, v := range map[string]string{"POSTGRES_USER": "cqrs", "POSTGRES_PASSWORD": "cqrs", "POSTGRES_DB": "cqrs"} {
			if got := env(pg, k); got != v {
				pr.addf("postgres: %s=%q, want %q", k, got, v)
			}
		}
	}

	// Kafka: KRaft (no ZooKeeper), one combined node, 12 partitions, reachable
	// as kafka:9092 on the compose network.
	if k, ok := p.Services["kafka"]; ok {
		roles := strings.Split(env(k, "KAFKA_PROCESS_ROLES"), ",")
		if !sameSet(roles, []string{"broker", "controller"}) {
			pr.addf("kafka: KAFKA_PROCESS_ROLES=%q, want broker,controller (KRaft combined node)", env(k, "KAFKA_PROCESS_ROLES"))
		}
		if env(k, "KAFKA_ZOOKEEPER_CONNECT") != "" {
			pr.addf("kafka: ZooKeeper is configured; use KRaft")
		}
		if !strings.Contains(env(k, "KAFKA_ADVERTISED_LISTENERS"), "://kafka:9092") {
			pr.addf("kafka: KAFKA_ADVERTISED_LISTENERS=%q does not advertise kafka:9092", env(k, "KAFKA_ADVERTISED_LISTENERS"))
		}
		if env(k, "KAFKA_NUM_PARTITIONS") != "12" {
			pr.addf("kafka: KAFKA_NUM_PARTITIONS=%q, want 12", env(k, "KAFKA_NUM_PARTITIONS"))
		}
		if env(k, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") != "1" {
			pr.addf("kafka: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR must be 1 on a single node")
		}
	}
	for _, name := range p.ServiceNames() {
		if strings.Contains(name, "zookeeper") {
			pr.addf("service %s: no ZooKeeper (Kafka runs in KRaft mode)", name)
		}
	}

	// The five services.
	for _, name := range spec.Names() {
		sv := spec.Services[name]
		s, ok := p.Services[name]
		if !ok {
			pr.addf("%s: missing from docker-compose.yml", name)
			continue
		}
		// Built from this repository's Dockerfile for this service.
		if s.Build == nil {
			pr.addf("%s: no build section", name)
		} else {
			if s.Build.Context != p.WorkingDir {
				pr.addf("%s: build context %q, want the repository root", name, s.Build.Context)
			}
			if s.Build.Dockerfile != "Dockerfile" {
				pr.addf("%s: dockerfile %q, want Dockerfile", name, s.Build.Dockerfile)
			}
			if a := s.Build.Args["SERVICE"]; a == nil || *a != name {
				pr.addf("%s: build arg SERVICE must be %q", name, name)
			}
		}
		if s.Image != "" {
			if why := imagePinned(s.Image); why != "" {
				pr.addf("%s: image %q %s", name, s.Image, why)
			}
		}
		if s.Restart != "unless-stopped" {
			pr.addf("%s: restart=%q, want unless-stopped", name, s.Restart)
		}
		// The services drain for up to ~20s after SIGTERM.
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 20*time.Second {
			pr.addf("%s: stop_grace_period must exceed the ~20s graceful shutdown", name)
		}

		// Depends on exactly its engines, and waits until they are healthy.
		var deps []string
		for dep, d := range s.DependsOn {
			deps = append(deps, dep)
			if d.Condition != types.ServiceConditionHealthy {
				pr.addf("%s: depends_on %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
		if !sameSet(deps, sv.DependsOn) {
			pr.addf("%s: depends_on %v, want %v (deploy/services.json)", name, sortedCopy(deps), sortedCopy(sv.DependsOn))
		}

		// Reads exactly the variables listed in deploy/services.json...
		var names []string
		for k := range s.Environment {
			names = append(names, k)
		}
		pr = append(pr, checkEnvNames(name, sv, names)...)
		if v := env(s, "SHUTDOWN_TIMEOUT"); v != "" && s.StopGracePeriod != nil {
			if d, err := time.ParseDuration(v); err != nil || d >= time.Duration(*s.StopGracePeriod) {
				pr.addf("%s: SHUTDOWN_TIMEOUT=%s must be shorter than stop_grace_period", name, v)
			}
		}
		// ...with values that point at the compose network's engines.
		pr = append(pr, checkServiceEnv(name, sv, func(k string) string { return env(s, k) })...)
		if v, ok := s.Environment["KAFKA_PARTITIONS"]; ok && v != nil {
			if kp := env(p.Services["kafka"], "KAFKA_NUM_PARTITIONS"); *v != kp {
				pr.addf("%s: KAFKA_PARTITIONS=%q but the broker's KAFKA_NUM_PARTITIONS=%q", name, *v, kp)
			}
		}

		// Ports: APIs published on their fixed host port; projectors publish
		// nothing and have no fixed container name, so --scale works.
		switch sv.Role {
		case "api":
			if len(s.Ports) != 1 {
				pr.addf("%s: %d ports, want exactly %d:%d", name, len(s.Ports), sv.Port, sv.Port)
			}
			for _, port := range s.Ports {
				if int(port.Target) != sv.Port || port.Published != strconv.Itoa(sv.Port) {
					pr.addf("%s: port %s:%d, want %d:%d", name, port.Published, port.Target, sv.Port, sv.Port)
				}
			}
		case "projector":
			if len(s.Ports) != 0 {
				pr.addf("%s: a projector must publish no host ports (it could not be scaled)", name)
			}
			if s.ContainerName != "" {
				pr.addf("%s: a projector must not set container_name (it could not be scaled)", name)
			}
		default:
			pr.addf("%s: unknown role %q in deploy/services.json", name, sv.Role)
		}
	}
	return pr
}

func hasNamedVolume(p *types.Project, service string) bool {
	for _, v := range p.Services[service].Volumes {
		if v.Type == types.VolumeTypeVolume {
			if _, declared := p.Volumes[v.Source]; declared {
				return true
			}
		}
	}
	return false
}

// Where each address variable must point, by host name. The compose service
// names and the dev overlay's Service names are the same, so this holds for
// both.
var engineOfVar = map[string]string{
	"DATABASE_URL":      "postgres",
	"KAFKA_BROKERS":     "kafka",
	"REDIS_URL":         "redis",
	"ELASTICSEARCH_URL": "elasticsearch",
}

// checkServiceEnv checks the values of a service's variables: HTTP_ADDR is its
// port, and each address names the engine (host) the service depends on.
func checkServiceEnv(name string, sv Service, get func(string) string) problems {
	var pr problems
	if got, want := get("HTTP_ADDR"), ":"+strconv.Itoa(sv.Port); got != want {
		pr.addf("%s: HTTP_ADDR=%q, want %q", name, got, want)
	}
	for _, k := range sv.Env {
		engine, isAddr := engineOfVar[k]
		if !isAddr {
			continue
		}
		v := get(k)
		host := v
		if strings.Contains(v, "://") {
			u, err := url.Parse(v)
			if err != nil {
				pr.addf("%s: %s=%q is not a URL: %v", name, k, v, err)
				continue
			}
			host = u.Host
		}
		for _, h := range strings.Split(host, ",") {
			if hn, _, _ := strings.Cut(h, ":"); hn != engine {
				pr.addf("%s: %s=%q points at %q, want the %s engine", name, k, v, hn, engine)
			}
		}
		if !slices.Contains(sv.DependsOn, engine) {
			pr.addf("%s: reads %s but does not depend on %s in deploy/services.json", name, k, engine)
		}
	}
	return pr
}

func TestCompose(t *testing.T) {
	p := loadCompose(t, repoRoot(t))
	checkCompose(p, loadSpec(t)).report(t)
}

// The checks must catch broken files, not just pass on good ones.
func TestComposeChecksDetectMistakes(t *testing.T) {
	spec := loadSpec(t)
	root := repoRoot(t)

	// Mutations of the loaded project.
	for _, tc := range []struct {
		name   string
		mutate func(p *types.Project)
		want   []string // substrings of one expected problem
	}{
		{"engine without healthcheck", func(p *types.Project) {
			s := p.Services["redis"]
			s.HealthCheck = nil
			p.Services["redis"] = s
		}, []string{"redis", "no healthcheck"}},
		{"unpinned engine image", func(p *types.Project) {
			s := p.Services["postgres"]
			s.Image = "postgres:latest"
			p.Services["postgres"] = s
		}, []string{"postgres", ":latest"}},
		{"projector with host port", func(p *types.Project) {
			s := p.Services["projector-stats"]
			s.Ports = []types.ServicePortConfig{{Target: 9102, Published: "9102"}}
			p.Services["projector-stats"] = s
		}, []string{"projector-stats", "no host ports"}},
		{"missing dependency", func(p *types.Project) {
			s := p.Services["search-indexer"]
			delete(s.DependsOn, "elasticsearch")
			p.Services["search-indexer"] = s
		}, []string{"search-indexer", "depends_on"}},
		{"started instead of healthy", func(p *types.Project) {
			s := p.Services["query-api"]
			s.DependsOn["redis"] = types.ServiceDependency{Condition: types.ServiceConditionStarted}
			p.Services["query-api"] = s
		}, []string{"query-api", "service_healthy"}},
		{"extra variable", func(p *types.Project) {
			s := p.Services["command-api"]
			x := "redis://redis:6379/0"
			s.Environment["REDIS_URL"] = &x
			p.Services["command-api"] = s
		}, []string{"command-api", "REDIS_URL", "does not read"}},
		{"required variable missing", func(p *types.Project) {
			s := p.Services["query-api"]
			delete(s.Environment, "ELASTICSEARCH_URL")
			p.Services["query-api"] = s
		}, []string{"query-api", "lacks", "ELASTICSEARCH_URL"}},
		{"wrong API port", func(p *types.Project) {
			s := p.Services["query-api"]
			s.Ports = []types.ServicePortConfig{{Target: 8081, Published: "18081"}}
			p.Services["query-api"] = s
		}, []string{"query-api", "port"}},
		{"address to the wrong host", func(p *types.Project) {
			s := p.Services["projector-orders"]
			x := "localhost:9092"
			s.Environment["KAFKA_BROKERS"] = &x
			p.Services["projector-orders"] = s
		}, []string{"projector-orders", "KAFKA_BROKERS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, root)
			tc.mutate(p)
			if pr := checkCompose(p, spec); !pr.contains(tc.want...) {
				t.Errorf("problem %q not reported; got %q", tc.want, pr)
			}
		})
	}

	// A file the compose loader itself rejects (unknown key).
	t.Run("invalid compose file", func(t *testing.T) {
		dir := t.TempDir()
		data := strings.Replace(string(readFile(t, "docker-compose.yml")), "    restart: unless-stopped\n", "    restart: unless-stopped\n    restrat: always\n", 1)
		if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")}, cli.WithWorkingDirectory(dir), cli.WithEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = opts.LoadProject(context.Background())
		if err == nil || !strings.Contains(err.Error(), "restrat") {
			t.Errorf("the loader did not reject the unknown key: %v", err)
		}
	})
}
