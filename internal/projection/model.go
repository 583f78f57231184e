package projection

import (
	"context"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

// Partition is one partition of one Kafka topic.
type Partition struct {
	Topic     string
	Partition int
}

// Offsets maps partitions to Kafka offsets. In a resume point, a partition's
// offset is that of the next message to read: every message before it has
// been handled (applied, skipped as a duplicate, or parked in the DLQ) and
// its effect is durable in the model.
type Offsets map[Partition]int64

// Advance is how one batch moves a model's resume point.
type Advance struct {
	// To is, for each partition of the batch, the offset after the batch's
	// last message of that partition.
	To Offsets
	// From is, for each partition of the batch, the resume point the runtime
	// last saw the model hold (absent: it has seen none yet).
	//
	// The model moves a partition's resume point only where it still holds
	// at least From: a store that has lost data (restarted empty, restored
	// from a backup) must never be moved past what it lost, or a crash
	// before the runtime rewinds would lose those events for good. Where it
	// moves, it keeps the higher of its stored point and To: a replica that
	// overlapped during a rebalance may have recorded more.
	From Offsets
}

// Empty reports whether the advance moves no partition (a batch read from
// the event store, not from Kafka: replay, rebuild catch-up, repair).
func (a Advance) Empty() bool { return len(a.To) == 0 }

// Model is a read model kept by the runtime. Its store, not Kafka, is the
// truth about what it has applied: it keeps, per stream, the version it
// reflects and, per partition, its resume point, each atomically with the
// change it describes, or written after it (never before it).
//
// Implementations must be safe for concurrent use, also by several
// processes (replicas overlap briefly during a rebalance).
type Model interface {
	// Name identifies the projection: in metrics, in GET /v1/projections,
	// in the rebuild lock ("orders", "stats", "search").
	Name() string
	// StreamTypes are the streams the model is built from. The runtime
	// consumes their topics only, and reads only them from the store.
	StreamTypes() []events.StreamType
	// Versions returns the stored version of each stream; a stream the
	// model holds nothing of is absent (version 0).
	Versions(ctx context.Context, streamIDs []uuid.UUID) (map[uuid.UUID]int64, error)
	// Apply makes the effect of evs durable and moves the resume point by
	// adv (adv may be empty, and evs may be empty when only the resume
	// point moves). Per stream, evs are contiguous and start right after
	// the version Versions reported; Apply must still check and set each
	// stream's version itself (apply an event only if the stored version is
	// its version - 1), since another replica may write the same streams.
	//
	// It returns the resume point the model durably holds, after the call,
	// for the partitions of adv: normally adv.To (or more, recorded by
	// another replica); less when the model records its resume point
	// lazily (never ahead of what is durable); less than adv.From when the
	// model has lost data, and the runtime then rewinds those partitions.
	Apply(ctx context.Context, evs []events.Envelope, adv Advance) (Offsets, error)
	// ResumePoint returns the resume point the model durably holds for
	// each of partitions; a partition it holds none for is absent.
	ResumePoint(ctx context.Context, partitions []Partition) (Offsets, error)
	// Unavailable reports whether err means the model's store cannot be
	// reached or cannot serve for now (see the engine's classifier under
	// internal/platform). The runtime retries such a batch without end and
	// never dead-letters it: a DLQ would turn an outage into data loss.
	Unavailable(err error) bool
}

// Optimist is a Model that can apply a batch without reading its streams'
// versions first: in the common case, where every event continues its
// stream, a batch then takes one round trip to the store instead of two.
type Optimist interface {
	// TryApply applies, in batch order, each event of evs whose stream is
	// stored at the version just before it, and reports which it applied
	// (one flag per event); the others changed nothing. A model may apply
	// all of evs or none. Only when it applied every event does it also
	// move the resume point by adv, as Apply does, and return the resume
	// point it holds; otherwise it returns nil Offsets and leaves the
	// resume point alone, and the runtime goes on with Versions and Apply.
	TryApply(ctx context.Context, evs []events.Envelope, adv Advance) ([]bool, Offsets, error)
}

// Rebuildable is a model that can be rebuilt from the event store into a
// fresh copy and swapped in while the live model keeps serving.
type Rebuildable interface {
	// NewCopy prepares an empty copy of the model that no reader sees yet,
	// dropping any leftover of an aborted rebuild.
	NewCopy(ctx context.Context) (Copy, error)
}

// Copy is a fresh model being filled from the event store.
type Copy interface {
	// Fill applies a batch of the store's events, in the store's
	// commit-safe order, to the copy. It may buffer and write in bulk; what
	// it buffers is written by Swap at the latest.
	Fill(ctx context.Context, batch []events.Envelope) error
	// Swap makes the copy the live model in one atomic step. The copy holds
	// resume as its resume point from then on (written before or with the
	// swap): every message before those offsets is in the copy.
	Swap(ctx context.Context, resume Offsets) error
	// Discard drops a copy that will not be swapped in.
	Discard(ctx context.Context) error
}

// Doc is one unit of a model as verify compares it: a row, a hash, a
// document.
type Doc struct {
	// Key names the doc within the model, for example "order/<id>" or
	// "customer/<id>".
	Key string
	// Streams are the versions of the streams the doc reflects: one for a
	// doc per stream, several for an aggregate over streams (a customer's
	// statistics over that customer's orders).
	Streams map[uuid.UUID]int64
	// Fields are the doc's values, as text, by name: what verify compares
	// and names in a drift report.
	Fields map[string]string
}

// Fold turns events into the docs a model should hold. Events come in the
// store's commit-safe order, so each stream's events come in version order.
// A fold is pure: it reads no store.
type Fold interface {
	Add(e events.Envelope) error
	// Docs returns every doc of the events added so far.
	Docs() []Doc
}

// Verifiable is a model that verify can compare with the fold of the event
// store, and repair.
type Verifiable interface {
	// NewFold returns an empty fold.
	NewFold() Fold
	// ScanDocs calls fn with every doc the model holds, a page at a time.
	ScanDocs(ctx context.Context, fn func([]Doc) error) error
	// Docs reads the docs of keys; a key the model holds no doc for is
	// absent.
	Docs(ctx context.Context, keys []string) (map[string]Doc, error)
	// Repair replaces what the model holds for keys with the docs folded
	// from streams: every event of each stream those docs depend on, as the
	// store holds them now. It must not move any stream backwards past a
	// version the live projector has applied since (check and set versions
	// as Apply does, or hold the rows while it writes).
	Repair(ctx context.Context, keys []string, streams map[uuid.UUID][]events.Envelope) error
}
