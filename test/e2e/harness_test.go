// Package e2e drives the five real service binaries over HTTP against the
// real engines and checks every read model against a reference fold of the
// event store.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/testsupport/testenv"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	root, _ := filepath.Abs("../..")
	for _, svc := range []string{"command-api", "query-api", "projector-orders", "projector-stats", "search-indexer"} {
		cmd := exec.Command(filepath.Join(root, "scripts/build.sh"), svc, dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", svc, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// system is one isolated deployment: its own database, topics, consumer
// groups, Redis key prefix and Elasticsearch index prefix.
type system struct {
	t       *testing.T
	id      string
	dbURL   string
	env     []string
	mu      sync.Mutex
	procs   map[string]*proc
	command string // command API base URL
	query   string // query API base URL
	logDir  string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
}

func newSystem(t *testing.T) *system {
	t.Helper()
	testenv.RequireKafka(t)
	testenv.RequireRedis(t)
	testenv.RequireElasticsearch(t)
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	s := &system{t: t, id: id, dbURL: testenv.NewDatabase(t), procs: map[string]*proc{}, logDir: t.TempDir()}
	s.env = append(os.Environ(),
		"DATABASE_URL="+s.dbURL,
		"KAFKA_BROKERS="+strings.Join(testenv.KafkaBrokers(), ","),
		"REDIS_URL="+testenv.RedisURL(),
		"ELASTICSEARCH_URL="+testenv.ElasticsearchURL(),
		"KAFKA_TOPIC_PREFIX=e2e-"+id+"-",
		"KAFKA_PARTITIONS=6",
		"STATS_KEY_PREFIX=e2e-"+id+":",
		"SEARCH_INDEX_PREFIX=e2e-"+id+"-",
		"LOG_LEVEL=info",
		"SHUTDOWN_TIMEOUT=10s",
	)
	t.Cleanup(s.stopAll)
	return s
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs one replica of a service and waits for /healthz.
func (s *system) start(service string, replica int, extraEnv ...string) *proc {
	s.t.Helper()
	addr := freePort(s.t)
	name := service + "-" + strconv.Itoa(replica)
	p := &proc{name: name, addr: addr, log: filepath.Join(s.logDir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		s.t.Fatal(err)
	}
	p.cmd = exec.Command(filepath.Join(binDir, service))
	p.cmd.Env = append(append(append([]string{}, s.env...), "HTTP_ADDR="+addr, "CONSUMER_GROUP=e2e-"+s.id+"-"+service), extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-p.done:
			s.t.Fatalf("%s exited at start:\n%s", name, tail(p.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not healthy in 60s:\n%s", name, tail(p.log, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch service {
	case "command-api":
		s.command = "http://" + addr
	case "query-api":
		s.query = "http://" + addr
	}
	return p
}

// startAll starts one command API, one query API and n replicas of each projector.
func (s *system) startAll(n int) {
	s.start("command-api", 0)
	s.start("query-api", 0)
	for i := 0; i < n; i++ {
		for _, svc := range []string{"projector-orders", "projector-stats", "search-indexer"} {
			s.start(svc, i)
		}
	}
}

// kill sends SIGKILL: the process gets no chance to finish or commit.
func (s *system) kill(name string) {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (s *system) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if s.t.Failed() {
			s.t.Logf("--- %s log (tail) ---\n%s", p.name, tail(p.log, 25))
		}
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// call does one JSON request and decodes the reply into a map.
func call(ctx context.Context, method, url string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: %d %q", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out, nil
}
