package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/services/command-api/internal/config"
	"github.com/escqrs/platform/services/command-api/internal/server"
)

type api struct {
	t     *testing.T
	url   string
	store *eventstore.Store
}

func newAPI(t *testing.T) *api {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	return newAPIWith(t, dbURL)
}

func newAPIWith(t *testing.T, dbURL string) *api {
	t.Helper()
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.RelayEnabled, cfg.SnapshotEveryAccount = dbURL, false, 3
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &api{t: t, url: ts.URL, store: eventstore.New(testenv.NewPool(t, dbURL))}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func (a *api) do(method, path, contentType, body string, headers map[string]string) reply {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			a.t.Fatalf("%s %s: body %q is not JSON: %v", method, path, raw, err)
		}
	}
	return r
}

func (a *api) post(path, body string, headers ...string) reply {
	h := map[string]string{}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return a.do(http.MethodPost, path, "application/json", body, h)
}

func (a *api) openAccount(balance int64) string {
	r := a.post("/v1/accounts", fmt.Sprintf(`{"owner":"ada","initial_balance_cents":%d,"currency":"EUR"}`, balance))
	if r.status != http.StatusCreated {
		a.t.Fatalf("open account: %d %v", r.status, r.body)
	}
	return r.body["id"].(string)
}

func (a *api) placeOrder() string {
	r := a.post("/v1/orders", fmt.Sprintf(`{"customer_id":%q,"currency":"EUR","tax_cents":50,"items":[{"sku":"LAMP-1","name":"Desk lamp","quantity":2,"unit_price_cents":1000}]}`, uuid.NewString()))
	if r.status != http.StatusCreated {
		a.t.Fatalf("place order: %d %v", r.status, r.body)
	}
	return r.body["id"].(string)
}

func (a *api) streamLen(id string) int {
	a.t.Helper()
	evs, err := a.store.ReadStream(context.Background(), uuid.MustParse(id), 0, 10000)
	if err != nil {
		a.t.Fatal(err)
	}
	return len(evs)
}

func TestCommandSuccess(t *testing.T) {
	a := newAPI(t)
	r := a.post("/v1/accounts", `{"owner":"ada","initial_balance_cents":1000,"currency":"EUR"}`, "X-Actor", "alice", "X-Correlation-ID", "corr-1")
	if r.status != http.StatusCreated {
		t.Fatalf("status %d %v", r.status, r.body)
	}
	id := r.body["id"].(string)
	if r.header.Get("Location") != "/v1/accounts/"+id || r.body["version"] != 1.0 || r.body["status"] != "open" || r.body["position"].(float64) < 1 {
		t.Fatalf("create reply: %v %v", r.header, r.body)
	}
	if r.header.Get("ETag") != `"1"` {
		t.Fatalf("ETag %q", r.header.Get("ETag"))
	}
	steps := []struct {
		path, body string
		version    float64
		status     string
	}{
		{"/deposits", `{"amount_cents":500,"source":"card"}`, 2, "open"},
		{"/withdrawals", `{"amount_cents":1500,"reason":"rent"}`, 3, "open"},
		{"/deposits", `{"amount_cents":70,"source":"typo"}`, 4, "open"},
		{"/deposit-reversals", `{"deposit_version":4,"reason":"entered twice"}`, 5, "open"},
		{"/close", `{"reason":"moving"}`, 6, "closed"},
	}
	for _, s := range steps {
		r := a.post("/v1/accounts/"+id+s.path, s.body)
		if r.status != http.StatusOK || r.body["version"] != s.version || r.body["status"] != s.status || r.body["id"] != id {
			t.Fatalf("%s: %d %v", s.path, r.status, r.body)
		}
	}
	evs, err := a.store.ReadStream(context.Background(), uuid.MustParse(id), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := "AccountOpened FundsDeposited FundsWithdrawn FundsDeposited DepositReversed AccountClosed"
	if strings.Join(types, " ") != want {
		t.Fatalf("stream = %v, want %s", types, want)
	}
	if evs[0].Metadata.Actor != "alice" || evs[0].Metadata.CorrelationID != "corr-1" {
		t.Fatalf("metadata = %+v", evs[0].Metadata)
	}

	order := a.placeOrder()
	for _, s := range []struct{ path, body, status string }{
		{"/payments", `{"amount_cents":2050,"method":"card"}`, "paid"},
		{"/shipments", `{"carrier":"DHL","tracking_number":"JD0001"}`, "shipped"},
	} {
		r := a.post("/v1/orders/"+order+s.path, s.body)
		if r.status != http.StatusOK || r.body["status"] != s.status {
			t.Fatalf("%s: %d %v", s.path, r.status, r.body)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	a := newAPI(t)
	acct := a.openAccount(100)
	order := a.placeOrder()
	missing := uuid.NewString()
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		headers     map[string]string
		status      int
		fields      []string
	}{
		{"malformed JSON", "/v1/accounts", "application/json", `{"owner":`, nil, 400, nil},
		{"unknown field", "/v1/accounts", "application/json", `{"owner":"a","currency":"EUR","colour":"red"}`, nil, 400, nil},
		{"empty body", "/v1/accounts/" + acct + "/deposits", "application/json", ``, nil, 400, nil},
		{"not JSON", "/v1/accounts", "text/plain", `owner=a`, nil, 415, nil},
		{"no content type", "/v1/accounts", "", `{}`, nil, 415, nil},
		{"too large", "/v1/accounts", "application/json", `{"owner":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, nil},
		{"invalid fields listed", "/v1/accounts", "application/json", `{"owner":"","initial_balance_cents":-1,"currency":"euro"}`, nil, 422,
			[]string{"owner", "initial_balance_cents", "currency"}},
		{"wrong type", "/v1/accounts/" + acct + "/deposits", "application/json", `{"amount_cents":"ten"}`, nil, 422, []string{"amount_cents"}},
		{"order item fields", "/v1/orders", "application/json", `{"customer_id":"` + uuid.NewString() + `","currency":"EUR","items":[{"sku":"","name":"x","quantity":0,"unit_price_cents":1}]}`, nil, 422,
			[]string{"items[0].sku", "items[0].quantity"}},
		{"unknown account", "/v1/accounts/" + missing + "/deposits", "application/json", `{"amount_cents":1}`, nil, 404, nil},
		{"unknown order", "/v1/orders/" + missing + "/payments", "application/json", `{"amount_cents":1,"method":"card"}`, nil, 404, nil},
		{"malformed id", "/v1/orders/not-a-uuid/payments", "application/json", `{"amount_cents":1,"method":"card"}`, nil, 404, nil},
		{"insufficient funds", "/v1/accounts/" + acct + "/withdrawals", "application/json", `{"amount_cents":101}`, nil, 409, nil},
		{"ship unpaid", "/v1/orders/" + order + "/shipments", "application/json", `{"carrier":"DHL","tracking_number":"1"}`, nil, 409, nil},
		{"if-match mismatch", "/v1/accounts/" + acct + "/deposits", "application/json", `{"amount_cents":1}`, map[string]string{"If-Match": `"7"`}, 412, nil},
		{"if-match malformed", "/v1/accounts/" + acct + "/deposits", "application/json", `{"amount_cents":1}`, map[string]string{"If-Match": `"seven"`}, 400, nil},
		{"unknown route", "/v1/widgets", "application/json", `{}`, nil, 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(http.MethodPost, tt.path, tt.contentType, tt.body, tt.headers)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %v", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			if r.body["status"] != float64(tt.status) || r.body["title"] == "" {
				t.Fatalf("problem body %v", r.body)
			}
			if tt.fields != nil {
				var got []string
				for _, f := range r.body["errors"].([]any) {
					got = append(got, f.(map[string]any)["field"].(string))
				}
				if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
					t.Fatalf("invalid fields %v, want %v", got, tt.fields)
				}
			}
		})
	}
	// None of the rejected commands appended anything.
	if n := a.streamLen(acct); n != 1 {
		t.Fatalf("account stream has %d events after rejected commands, want 1", n)
	}
	if n := a.streamLen(order); n != 1 {
		t.Fatalf("order stream has %d events after rejected commands, want 1", n)
	}
}

func TestIfMatch(t *testing.T) {
	a := newAPI(t)
	acct := a.openAccount(0)
	r := a.post("/v1/accounts/"+acct+"/deposits", `{"amount_cents":5}`, "If-Match", `"1"`)
	if r.status != http.StatusOK || r.body["version"] != 2.0 {
		t.Fatalf("matching If-Match: %d %v", r.status, r.body)
	}
	r = a.post("/v1/accounts/"+acct+"/deposits", `{"amount_cents":5}`, "If-Match", `"1"`)
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d %v", r.status, r.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	a := newAPI(t)
	body := `{"owner":"ada","initial_balance_cents":10,"currency":"EUR"}`
	first := a.post("/v1/accounts", body, "Idempotency-Key", "open-1")
	again := a.post("/v1/accounts", body, "Idempotency-Key", "open-1")
	if first.status != 201 || again.status != 201 || first.body["id"] != again.body["id"] || first.body["position"] != again.body["position"] {
		t.Fatalf("replay differs: %d %v / %d %v", first.status, first.body, again.status, again.body)
	}
	if again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Location") != first.header.Get("Location") {
		t.Fatalf("replay headers %v", again.header)
	}
	id := first.body["id"].(string)

	// Ten concurrent retries of one deposit append it once.
	var wg sync.WaitGroup
	replies := make([]reply, 10)
	for i := range replies {
		wg.Go(func() {
			replies[i] = a.post("/v1/accounts/"+id+"/deposits", `{"amount_cents":7}`, "Idempotency-Key", "dep-1")
		})
	}
	wg.Wait()
	for _, r := range replies {
		if r.status != 200 || r.body["version"] != 2.0 {
			t.Fatalf("concurrent retry: %d %v", r.status, r.body)
		}
	}
	if n := a.streamLen(id); n != 2 {
		t.Fatalf("stream has %d events, want 2 (open + one deposit)", n)
	}
	// The same key with another request is refused, not replayed.
	r := a.post("/v1/accounts/"+id+"/deposits", `{"amount_cents":8}`, "Idempotency-Key", "dep-1")
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key: %d %v", r.status, r.body)
	}
	if n := a.streamLen(id); n != 2 {
		t.Fatalf("stream has %d events after key reuse, want 2", n)
	}
}

// Commands without If-Match that lose a version race are re-decided: 20
// concurrent deposits all succeed and the stream ends with all of them.
func TestConcurrentCommandsRetryLostRaces(t *testing.T) {
	a := newAPI(t)
	id := a.openAccount(0)
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Go(func() { statuses[i] = a.post("/v1/accounts/"+id+"/deposits", `{"amount_cents":1}`).status })
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("deposit %d: status %d", i, s)
		}
	}
	if n := a.streamLen(id); n != 21 {
		t.Fatalf("stream has %d events, want 21", n)
	}
}

// With the database unreachable, commands answer 503 with Retry-After.
func TestDatabaseDownIs503(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	a := newAPIWith(t, dbURL)
	id := a.openAccount(0)
	// Point a second server at a port where nothing listens, reusing the migrated schema's name.
	down := strings.Replace(dbURL, "127.0.0.1:5432", "127.0.0.1:1", 1)
	cfg, _ := config.FromEnv()
	cfg.DatabaseURL, cfg.RelayEnabled = down, false
	if _, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("server.New with an unreachable database succeeded; want a migration error")
	}
	// A server whose database goes away after start: terminate its connections and block new ones.
	admin := testenv.NewPool(t, testenv.DatabaseURL())
	name := dbURL[strings.LastIndex(dbURL, "/")+1:]
	if i := strings.Index(name, "?"); i >= 0 {
		name = name[:i]
	}
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") })
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		t.Fatal(err)
	}
	r := a.post("/v1/accounts/"+id+"/deposits", `{"amount_cents":1}`)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("database down: %d %v %v", r.status, r.header, r.body)
	}
	ready, err := http.Get(a.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with database down: %d, want 503", ready.StatusCode)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	a := newAPI(t)
	a.openAccount(1)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "postgres", "/metrics": "eventstore_appended_events_total 1"} {
		resp, err := http.Get(a.url + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(raw), want) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
	}
}
