package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/pkg/events"
)

// historyEvent is one entry of an audit trail: the stored event, its payload
// in the current schema (old schemas are upcast on read).
type historyEvent struct {
	EventID       uuid.UUID       `json:"event_id"`
	Version       int64           `json:"version"`
	Position      int64           `json:"position"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Data          json.RawMessage `json:"data"`
	RecordedAt    time.Time       `json:"recorded_at"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Metadata      historyMetadata `json:"metadata"`
}

// historyMetadata lists every metadata field, empty or not, so the shape of
// an audit entry never depends on what the writer happened to send.
type historyMetadata struct {
	CorrelationID  string `json:"correlation_id"`
	CausationID    string `json:"causation_id"`
	Actor          string `json:"actor"`
	IdempotencyKey string `json:"idempotency_key"`
	Traceparent    string `json:"traceparent"`
}

type historyPage struct {
	Events     []historyEvent `json:"events"`
	NextCursor *string        `json:"next_cursor"`
}

// history serves GET /v1/{orders,accounts}/{id}/history: the stream's events
// in version order, after ?after_version, ?limit at a time.
func (h *handler) history(streamType events.StreamType) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, string(streamType))
		if !ok {
			return
		}
		p := newParams(r)
		limit := p.limit(defaultHistory, maxHistory)
		after := p.int64("after_version", 0, 0, maxInt64)
		if p.failed(w, r) {
			return
		}
		evs, err := h.Events.ReadStream(r.Context(), id, after, limit+1)
		if err != nil {
			h.fail(w, r, err, "the event store")
			return
		}
		first := evs
		if len(evs) == 0 && after > 0 {
			// Past the end of the stream, or no stream at all: the first
			// event tells which, and of what type.
			if first, err = h.Events.ReadStream(r.Context(), id, 0, 1); err != nil {
				h.fail(w, r, err, "the event store")
				return
			}
		}
		if len(first) == 0 || first[0].StreamType != streamType {
			httpserver.Error(w, r, http.StatusNotFound, fmt.Sprintf("no such %s", streamType))
			return
		}
		out := historyPage{Events: make([]historyEvent, 0, min(len(evs), limit))}
		if len(evs) > limit {
			evs = evs[:limit]
			next := strconv.FormatInt(evs[limit-1].Version, 10)
			out.NextCursor = &next
		}
		for _, e := range evs {
			data, err := json.Marshal(e.Data)
			if err != nil {
				h.fail(w, r, fmt.Errorf("encode %s payload at version %d: %w", e.Type, e.Version, err), "the event store")
				return
			}
			out.Events = append(out.Events, historyEvent{
				EventID: e.EventID, Version: e.Version, Position: e.Position, Type: e.Type, SchemaVersion: e.SchemaVersion,
				Data: data, RecordedAt: e.RecordedAt.UTC(), OccurredAt: e.OccurredAt.UTC(),
				Metadata: historyMetadata{CorrelationID: e.Metadata.CorrelationID, CausationID: e.Metadata.CausationID,
					Actor: e.Metadata.Actor, IdempotencyKey: e.Metadata.IdempotencyKey, Traceparent: e.Metadata.Traceparent},
			})
		}
		httpserver.WriteJSON(w, http.StatusOK, out)
	}
}
