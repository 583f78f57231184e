package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/olivere/elastic/v7"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/config"
	"github.com/escqrs/platform/services/query-api/internal/server"
)

// env is one test's isolated world: its own Postgres database (event store
// and read models), its own Redis namespace and active-namespace key, its
// own Elasticsearch index, alias and checkpoint index, and a query API
// served over real HTTP on top of them.
type env struct {
	cfg   config.Config
	pool  *pgxpool.Pool
	store *eventstore.Store
	rdb   *redis.Client
	keys  statskeys.Keys
	es    *elastic.Client
	index string
	url   string
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRedis(t)
	testenv.RequireElasticsearch(t)
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t)
	if err := eventstore.Migrate(dbURL); err != nil {
		t.Fatal(err)
	}
	if err := ordersdb.Migrate(dbURL); err != nil {
		t.Fatal(err)
	}
	e := &env{pool: testenv.NewPool(t, dbURL)}
	e.store = eventstore.New(e.pool)

	prefix := randomName("qapitest")
	ropts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(ropts)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := e.rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			e.rdb.Del(ctx, iter.Val())
		}
		_ = e.rdb.Close()
	})
	nsKey := prefix + ":active-namespace"
	// The readers must follow the active-namespace key, not the default.
	e.keys = statskeys.Keys{NS: prefix + "-ns1"}
	if err := e.rdb.Set(ctx, nsKey, e.keys.NS, 0).Err(); err != nil {
		t.Fatal(err)
	}

	e.es, err = elastic.NewClient(elastic.SetURL(testenv.ElasticsearchURL()), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		t.Fatal(err)
	}
	e.index = prefix + "-orders-v1"
	alias, cpIndex := prefix+"-orders", prefix+"-checkpoints"
	if _, err := e.es.CreateIndex(e.index).BodyString(searchdoc.Mapping).Do(ctx); err != nil {
		t.Fatalf("create index: %v", err)
	}
	t.Cleanup(func() {
		_, _ = e.es.DeleteIndex(e.index, cpIndex).IgnoreUnavailable(true).Do(context.Background())
		e.es.Stop()
	})
	if _, err := e.es.Alias().Add(e.index, alias).Do(ctx); err != nil {
		t.Fatalf("create alias: %v", err)
	}

	e.cfg = config.Config{
		HTTPAddr: "127.0.0.1:0", DatabaseURL: dbURL, ReadModelDatabaseURL: dbURL,
		RedisURL: testenv.RedisURL(), ElasticsearchURL: testenv.ElasticsearchURL(), LogLevel: "error",
		ReadWait: 2 * time.Second, PollInterval: 10 * time.Millisecond, RecheckInterval: 250 * time.Millisecond,
		StatsNamespaceKey: nsKey, SearchAlias: alias, SearchCheckpointIndex: cpIndex,
		DBMaxConns: 10, ShutdownTimeout: 5 * time.Second,
	}
	e.url = e.serve(t, e.cfg)
	return e
}

// serve starts the real query API with cfg behind httptest and returns its URL.
func (e *env) serve(t *testing.T, cfg config.Config) string {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

func (e *env) get(t *testing.T, path string, header ...string) response {
	t.Helper()
	return get(t, e.url+path, header...)
}

// expect fails unless the response has status and, when want is not nil, a
// JSON body equal to want's JSON (same keys, same values: nothing extra).
func (r response) expect(t *testing.T, status int, want any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if want == nil {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	assertJSON(t, r.body, want)
}

func assertJSON(t *testing.T, got []byte, want any) {
	t.Helper()
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(wb, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body\n got: %s\nwant: %s", strings.TrimSpace(string(got)), wb)
	}
}

// problem fails unless the response is an RFC 9457 problem with status;
// it returns the problem for further checks.
func (r response) problem(t *testing.T, status int) httpserver.Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, r.body)
	}
	var p httpserver.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, r.body)
	}
	if p.Status != status || p.Title == "" {
		t.Fatalf("problem %+v: want status %d and a title", p, status)
	}
	return p
}

// badParams fails unless the response is a 400 listing exactly fields.
func (r response) badParams(t *testing.T, fields ...string) {
	t.Helper()
	p := r.problem(t, http.StatusBadRequest)
	var got []string
	for _, f := range p.Errors {
		got = append(got, f.Field)
		if f.Message == "" {
			t.Errorf("field %s has no message", f.Field)
		}
	}
	if !reflect.DeepEqual(got, fields) {
		t.Fatalf("invalid fields %v, want %v (problem %+v)", got, fields, p)
	}
	for _, f := range fields {
		if !strings.Contains(p.Detail, f) {
			t.Fatalf("detail %q does not name %s", p.Detail, f)
		}
	}
}

// ts returns a fixed instant, truncated to what Postgres stores.
func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC().Truncate(time.Microsecond)
}

// orderRow is one orders_view row, written the way projector-orders does.
type orderRow struct {
	ID, CustomerID      uuid.UUID
	Status              string
	Items               []events.LineItem
	TaxCents, Total     int64
	Currency            string
	Address             *events.Address
	Version             int64
	PlacedAt, UpdatedAt time.Time
}

func (e *env) putOrder(t *testing.T, o orderRow) {
	t.Helper()
	items, _ := json.Marshal(o.Items)
	var addr []byte
	if o.Address != nil {
		addr, _ = json.Marshal(o.Address)
	}
	_, err := e.pool.Exec(context.Background(), `INSERT INTO orders_view (order_id, customer_id, status, items, tax_cents,
		total_cents, currency, shipping_address, version, last_position, placed_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, version = excluded.version, updated_at = excluded.updated_at`,
		o.ID, o.CustomerID, o.Status, items, o.TaxCents, o.Total, o.Currency, addr, o.Version, o.Version, o.PlacedAt, o.UpdatedAt)
	if err != nil {
		t.Fatal(err)
	}
}

// orderJSON is the response body an orderRow must produce.
func orderJSON(o orderRow) map[string]any {
	m := map[string]any{
		"order_id": o.ID, "customer_id": o.CustomerID, "status": o.Status, "items": o.Items,
		"tax_cents": o.TaxCents, "total_cents": o.Total, "currency": o.Currency, "version": o.Version,
		"placed_at": o.PlacedAt, "updated_at": o.UpdatedAt,
	}
	if o.Address != nil {
		m["shipping_address"] = o.Address
	}
	return m
}

type accountRow struct {
	ID        uuid.UUID
	Owner     string
	Balance   int64
	Currency  string
	Status    string
	Version   int64
	UpdatedAt time.Time
}

func (e *env) putAccount(t *testing.T, a accountRow) {
	t.Helper()
	_, err := e.pool.Exec(context.Background(), `INSERT INTO accounts_balance (account_id, owner, balance_cents, currency,
		status, version, last_position, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.ID, a.Owner, a.Balance, a.Currency, a.Status, a.Version, a.Version, a.UpdatedAt)
	if err != nil {
		t.Fatal(err)
	}
}

// putAccountVersion overwrites an account's balance, version and time.
func (e *env) putAccountVersion(t *testing.T, a accountRow) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), `UPDATE accounts_balance SET balance_cents = $2, version = $3,
		updated_at = $4 WHERE account_id = $1`, a.ID, a.Balance, a.Version, a.UpdatedAt); err != nil {
		t.Fatal(err)
	}
}

func accountJSON(a accountRow) map[string]any {
	return map[string]any{"account_id": a.ID, "owner": a.Owner, "balance_cents": a.Balance, "currency": a.Currency,
		"status": a.Status, "version": a.Version, "updated_at": a.UpdatedAt}
}

// appendEvents appends payloads to a stream, each in its own transaction
// and a few milliseconds apart, so every event has a distinct recorded_at.
func (e *env) appendEvents(t *testing.T, st events.StreamType, id uuid.UUID, meta events.Metadata, payloads ...events.Payload) []events.Envelope {
	t.Helper()
	ctx := context.Background()
	v, err := e.store.StreamVersion(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Envelope
	for _, p := range payloads {
		if len(out) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		evs, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: st, StreamID: id, ExpectedVersion: v,
			Events: []eventstore.NewEvent{{Data: p, Metadata: meta, OccurredAt: time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond)}}})
		if err != nil {
			t.Fatal(err)
		}
		v++
		out = append(out, evs...)
	}
	return out
}

func ids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metric returns the value of one series (name with its labels, as the
// text exposition format writes it) from url's /metrics; -1 when absent.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	r := get(t, url+"/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// configFor is a complete configuration over the given engines.
func configFor(dbURL, redisURL, esURL string) config.Config {
	return config.Config{
		HTTPAddr: "127.0.0.1:0", DatabaseURL: dbURL, ReadModelDatabaseURL: dbURL, RedisURL: redisURL,
		ElasticsearchURL: esURL, LogLevel: "error", ReadWait: 2 * time.Second,
		PollInterval: 10 * time.Millisecond, RecheckInterval: 250 * time.Millisecond,
		StatsNamespaceKey: randomName("qapitest") + ":active-namespace", SearchAlias: randomName("qapitest"),
		SearchCheckpointIndex: randomName("qapitest"), DBMaxConns: 10, ShutdownTimeout: 5 * time.Second,
	}
}
