// Package events is the public contract of the platform: the envelope every
// service writes, publishes and reads, the typed payloads of the Account and
// Order events, and the registry that turns stored JSON back into those types.
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// StreamType names the kind of aggregate a stream belongs to.
type StreamType string

// The two aggregate kinds of the platform.
const (
	StreamOrder   StreamType = "order"
	StreamAccount StreamType = "account"
)

// Valid reports whether t is one of the known stream types.
func (t StreamType) Valid() bool { return t == StreamOrder || t == StreamAccount }

// Topic is the Kafka topic that carries the events of this stream type.
func (t StreamType) Topic() string { return string(t) + "-events" }

// Metadata travels with every event. It is never interpreted by the domain;
// it exists for tracing, auditing and deduplication.
type Metadata struct {
	CorrelationID  string `json:"correlation_id,omitempty"`
	CausationID    string `json:"causation_id,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	Traceparent    string `json:"traceparent,omitempty"`
	Actor          string `json:"actor,omitempty"`
}

// Envelope is one stored event with everything a reader needs to place it:
// which stream, which version within the stream, and which global position.
//
// Version is 1-based and gap-free within a stream. Position is unique across
// the store and assigned at append; the store hands events to its tailing
// readers in commit-safe order (see the eventstore package).
type Envelope struct {
	EventID       uuid.UUID
	StreamType    StreamType
	StreamID      uuid.UUID
	Version       int64
	Position      int64
	Type          string
	SchemaVersion int
	OccurredAt    time.Time
	RecordedAt    time.Time
	Data          Payload
	Metadata      Metadata
}

// wireEnvelope is the JSON shape of an Envelope; Data stays raw until the
// registry has decided how to decode (and maybe upcast) it.
type wireEnvelope struct {
	EventID       uuid.UUID       `json:"event_id"`
	StreamType    StreamType      `json:"stream_type"`
	StreamID      uuid.UUID       `json:"stream_id"`
	Version       int64           `json:"version"`
	Position      int64           `json:"position"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
}

// MarshalJSON writes the envelope in its wire shape.
func (e Envelope) MarshalJSON() ([]byte, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return nil, fmt.Errorf("marshal %s payload: %w", e.Type, err)
	}
	return json.Marshal(wireEnvelope{
		EventID: e.EventID, StreamType: e.StreamType, StreamID: e.StreamID,
		Version: e.Version, Position: e.Position, Type: e.Type, SchemaVersion: e.SchemaVersion,
		OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, Data: data, Metadata: e.Metadata,
	})
}

// UnmarshalJSON decodes the wire shape with the Default registry, upcasting
// old schema versions. An unknown type or a too-new schema version is an error.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode envelope: %w", err)
	}
	payload, err := Default.Decode(w.Type, w.SchemaVersion, w.Data)
	if err != nil {
		return err
	}
	*e = Envelope{
		EventID: w.EventID, StreamType: w.StreamType, StreamID: w.StreamID,
		Version: w.Version, Position: w.Position, Type: w.Type,
		SchemaVersion: Default.CurrentVersion(w.Type),
		OccurredAt:    w.OccurredAt, RecordedAt: w.RecordedAt, Data: payload, Metadata: w.Metadata,
	}
	return nil
}
