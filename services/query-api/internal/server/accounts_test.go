package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestGetAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acc := accountRow{ID: uuid.New(), Owner: "ada", Balance: 12345, Currency: "EUR", Status: "open", Version: 4,
		UpdatedAt: ts("2026-05-01T09:30:00.000001Z")}
	e.putAccount(t, acc)

	t.Run("found", func(t *testing.T) {
		r := e.get(t, "/v1/accounts/"+acc.ID.String())
		r.expect(t, http.StatusOK, accountJSON(acc))
		if r.header.Get("ETag") != `"4"` {
			t.Fatalf("ETag %q", r.header.Get("ETag"))
		}
	})
	t.Run("unknown", func(t *testing.T) {
		e.get(t, "/v1/accounts/"+uuid.NewString()).problem(t, http.StatusNotFound)
	})
	t.Run("bad id", func(t *testing.T) {
		p := e.get(t, "/v1/accounts/123").problem(t, http.StatusBadRequest)
		if !strings.Contains(p.Detail, "path parameter id") || !strings.Contains(p.Detail, "account") {
			t.Fatalf("detail %q", p.Detail)
		}
	})
	t.Run("min_version", func(t *testing.T) {
		e.get(t, "/v1/accounts/"+acc.ID.String()+"?min_version=4").expect(t, http.StatusOK, accountJSON(acc))
		r := e.get(t, "/v1/accounts/"+acc.ID.String()+"?min_version=5&wait=100ms")
		r.expect(t, http.StatusAccepted, map[string]any{"status": "pending", "version": 4, "min_version": 5})
		if r.header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
		}
	})
	t.Run("min_version reached by a concurrent write", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- get(t, e.url+"/v1/accounts/"+acc.ID.String()+"?min_version=5&wait=8s") }()
		time.Sleep(200 * time.Millisecond)
		want := acc
		want.Balance, want.Version, want.UpdatedAt = 10000, 5, ts("2026-05-01T10:00:00Z")
		e.putAccountVersion(t, want)
		(<-done).expect(t, http.StatusOK, accountJSON(want))
	})
	t.Run("bad parameters", func(t *testing.T) {
		e.get(t, "/v1/accounts/"+acc.ID.String()+"?min_version=-1").badParams(t, "min_version")
		e.get(t, "/v1/accounts/"+acc.ID.String()+"?at=yesterday&version=zero").badParams(t, "at", "version")
	})
}

func TestAccountsByBalance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	updated := ts("2026-05-02T00:00:00Z")
	balances := []int64{500, 300, 300, 300, 100, 50, 0}
	var accs []accountRow
	for i, b := range balances {
		a := accountRow{ID: uuid.New(), Owner: "owner" + strconv.Itoa(i), Balance: b, Currency: "EUR", Status: "open",
			Version: 1, UpdatedAt: updated}
		accs = append(accs, a)
		e.putAccount(t, a)
	}
	// Expected: balance DESC, then account_id ASC among equal balances.
	threes := []accountRow{accs[1], accs[2], accs[3]}
	for i := range threes {
		for j := i + 1; j < len(threes); j++ {
			if threes[j].ID.String() < threes[i].ID.String() {
				threes[i], threes[j] = threes[j], threes[i]
			}
		}
	}
	want := append([]accountRow{accs[0]}, threes...)
	want = append(want, accs[4])

	t.Run("pages", func(t *testing.T) {
		var got []map[string]any
		cursor, pages := "", 0
		for {
			path := "/v1/accounts?min_balance_cents=100&limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var pg struct {
				Items []map[string]any `json:"items"`
				Next  *string          `json:"next_cursor"`
			}
			r := e.get(t, path)
			r.expect(t, http.StatusOK, nil)
			decode(t, r.body, &pg)
			got = append(got, pg.Items...)
			pages++
			if pg.Next == nil {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			cursor = *pg.Next
		}
		if pages != 3 {
			t.Fatalf("%d pages, want 3", pages)
		}
		var wantJSON []map[string]any
		for _, a := range want {
			wantJSON = append(wantJSON, accountJSON(a))
		}
		assertJSON(t, mustJSON(t, got), wantJSON)
	})
	t.Run("threshold", func(t *testing.T) {
		var pg struct {
			Items []map[string]any `json:"items"`
		}
		r := e.get(t, "/v1/accounts?min_balance_cents=301")
		r.expect(t, http.StatusOK, nil)
		decode(t, r.body, &pg)
		if len(pg.Items) != 1 || pg.Items[0]["account_id"] != accs[0].ID.String() {
			t.Fatalf("items %v, want only the 500 account", pg.Items)
		}
		e.get(t, "/v1/accounts?min_balance_cents=501").expect(t, http.StatusOK, map[string]any{"items": []any{}, "next_cursor": nil})
		r = e.get(t, "/v1/accounts?min_balance_cents=-5&limit=100")
		decode(t, r.body, &pg)
		if len(pg.Items) != len(accs) {
			t.Fatalf("%d items, want all %d", len(pg.Items), len(accs))
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		e.get(t, "/v1/accounts").badParams(t, "min_balance_cents")
		e.get(t, "/v1/accounts?min_balance_cents=ten").badParams(t, "min_balance_cents")
		e.get(t, "/v1/accounts?min_balance_cents=1&limit=1000&cursor=Zm9v").badParams(t, "limit", "cursor")
	})
}

func TestAccountActivity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acc := accountRow{ID: uuid.New(), Owner: "bo", Balance: 700, Currency: "EUR", Status: "open", Version: 5, UpdatedAt: ts("2026-05-03T00:00:05Z")}
	e.putAccount(t, acc)
	type act struct {
		typ         string
		amount, bal int64
		desc        string
		position    int64
		recordedAt  time.Time
		version     int64
	}
	rows := []act{
		{typ: "AccountOpened", amount: 1000, bal: 1000, desc: "opened"},
		{typ: "FundsDeposited", amount: 500, bal: 1500, desc: "card"},
		{typ: "FundsWithdrawn", amount: -300, bal: 1200, desc: "atm"},
		{typ: "DepositReversed", amount: -500, bal: 700, desc: "typo"},
		{typ: "FundsDeposited", amount: 0, bal: 700, desc: ""},
	}
	for i := range rows {
		rows[i].version = int64(i + 1)
		rows[i].position = int64(10 + 3*i)
		rows[i].recordedAt = ts("2026-05-03T00:00:00Z").Add(time.Duration(i) * time.Second)
		r := rows[i]
		if _, err := e.pool.Exec(context.Background(), `INSERT INTO account_activity (account_id, version, position, type,
			amount_cents, balance_after_cents, description, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			acc.ID, r.version, r.position, r.typ, r.amount, r.bal, r.desc, r.recordedAt); err != nil {
			t.Fatal(err)
		}
	}
	// Another account's activity must not leak in.
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO account_activity (account_id, version, position, type,
		amount_cents, balance_after_cents, recorded_at) VALUES ($1, 1, 99, 'AccountOpened', 5, 5, now())`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	rowJSON := func(r act) map[string]any {
		return map[string]any{"version": r.version, "position": r.position, "type": r.typ, "amount_cents": r.amount,
			"balance_after_cents": r.bal, "description": r.desc, "recorded_at": r.recordedAt}
	}

	t.Run("pages newest first", func(t *testing.T) {
		wantPages := [][]int{{4, 3}, {2, 1}, {0}}
		cursor := ""
		for i, wp := range wantPages {
			path := "/v1/accounts/" + acc.ID.String() + "/activity?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var pg struct {
				Items []map[string]any `json:"items"`
				Next  *string          `json:"next_cursor"`
			}
			r := e.get(t, path)
			r.expect(t, http.StatusOK, nil)
			decode(t, r.body, &pg)
			var want []map[string]any
			for _, idx := range wp {
				want = append(want, rowJSON(rows[idx]))
			}
			assertJSON(t, mustJSON(t, pg.Items), want)
			if last := i == len(wantPages)-1; last != (pg.Next == nil) {
				t.Fatalf("page %d: next_cursor %v", i, pg.Next)
			}
			if pg.Next != nil {
				cursor = *pg.Next
			}
		}
	})
	t.Run("unknown account", func(t *testing.T) {
		e.get(t, "/v1/accounts/"+uuid.NewString()+"/activity").problem(t, http.StatusNotFound)
	})
	t.Run("bad parameters", func(t *testing.T) {
		e.get(t, "/v1/accounts/"+acc.ID.String()+"/activity?cursor=djA").badParams(t, "cursor") // "v0"
		e.get(t, "/v1/accounts/"+acc.ID.String()+"/activity?limit=x").badParams(t, "limit")
		e.get(t, "/v1/accounts/x/activity").problem(t, http.StatusBadRequest)
	})
}
