package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/services/query-api/internal/model"
)

// Cursors are opaque to clients: base64url (unpadded) of the sort key of
// the last item of a page. Their content is not a contract; only passing a
// next_cursor back unchanged is.

var errBadCursor = errors.New("malformed cursor")

func encodeCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errBadCursor, err)
	}
	return string(b), nil
}

// encodeOrderCursor encodes the (placed_at, order_id) key of an order list.
func encodeOrderCursor(k model.OrderKey) string {
	return encodeCursor(k.PlacedAt.UTC().Format(time.RFC3339Nano) + "|" + k.OrderID.String())
}

func decodeOrderCursor(c string) (model.OrderKey, error) {
	s, err := decodeCursor(c)
	if err != nil {
		return model.OrderKey{}, err
	}
	ts, id, ok := strings.Cut(s, "|")
	if !ok {
		return model.OrderKey{}, errBadCursor
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return model.OrderKey{}, fmt.Errorf("%w: %w", errBadCursor, err)
	}
	oid, err := uuid.Parse(id)
	if err != nil {
		return model.OrderKey{}, fmt.Errorf("%w: %w", errBadCursor, err)
	}
	return model.OrderKey{PlacedAt: t.UTC(), OrderID: oid}, nil
}

// encodeBalanceCursor encodes the (balance_cents, account_id) key of an account list.
func encodeBalanceCursor(k model.BalanceKey) string {
	return encodeCursor(strconv.FormatInt(k.BalanceCents, 10) + "|" + k.AccountID.String())
}

func decodeBalanceCursor(c string) (model.BalanceKey, error) {
	s, err := decodeCursor(c)
	if err != nil {
		return model.BalanceKey{}, err
	}
	bal, id, ok := strings.Cut(s, "|")
	if !ok {
		return model.BalanceKey{}, errBadCursor
	}
	n, err := strconv.ParseInt(bal, 10, 64)
	if err != nil {
		return model.BalanceKey{}, fmt.Errorf("%w: %w", errBadCursor, err)
	}
	aid, err := uuid.Parse(id)
	if err != nil {
		return model.BalanceKey{}, fmt.Errorf("%w: %w", errBadCursor, err)
	}
	return model.BalanceKey{BalanceCents: n, AccountID: aid}, nil
}

// encodeVersionCursor encodes the stream version of the last activity row.
func encodeVersionCursor(v int64) string { return encodeCursor("v" + strconv.FormatInt(v, 10)) }

func decodeVersionCursor(c string) (int64, error) {
	s, err := decodeCursor(c)
	if err != nil {
		return 0, err
	}
	digits, ok := strings.CutPrefix(s, "v")
	if !ok {
		return 0, errBadCursor
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v < 1 {
		return 0, errBadCursor
	}
	return v, nil
}

// encodeSearchCursor encodes Elasticsearch's sort values of the last hit
// (placed_at in epoch milliseconds, order_id), the search_after of the next page.
func encodeSearchCursor(sort []any) (string, error) {
	b, err := json.Marshal(sort)
	if err != nil {
		return "", fmt.Errorf("encode search cursor: %w", err)
	}
	return encodeCursor(string(b)), nil
}

func decodeSearchCursor(c string) ([]any, error) {
	s, err := decodeCursor(c)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var vals []any
	if err := dec.Decode(&vals); err != nil || dec.More() {
		return nil, errBadCursor
	}
	if len(vals) != 2 {
		return nil, errBadCursor
	}
	num, ok := vals[0].(json.Number)
	if !ok {
		return nil, errBadCursor
	}
	millis, err := num.Int64()
	if err != nil {
		return nil, errBadCursor
	}
	id, ok := vals[1].(string)
	if !ok {
		return nil, errBadCursor
	}
	if _, err := uuid.Parse(id); err != nil {
		return nil, errBadCursor
	}
	return []any{millis, id}, nil
}
