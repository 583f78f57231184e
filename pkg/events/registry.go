package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	fastjson "github.com/goccy/go-json"
)

// Payload is the typed body of an event. Each payload knows its type name and
// the schema version its Go shape corresponds to.
type Payload interface {
	EventType() string
}

var (
	// ErrUnknownEventType is returned when decoding a type no payload was registered for.
	ErrUnknownEventType = errors.New("unknown event type")
	// ErrSchemaTooNew is returned for a schema version newer than this code knows:
	// decoding it with an older struct would silently drop fields.
	ErrSchemaTooNew = errors.New("event schema version newer than supported")
	// ErrNoUpcaster is returned when an old schema version has no path to the current one.
	ErrNoUpcaster = errors.New("no upcaster for event schema version")
)

// Upcaster rewrites the JSON of one schema version into the next one.
type Upcaster func(old json.RawMessage) (json.RawMessage, error)

type registration struct {
	decode    func(data []byte) (Payload, error) // JSON of the current version
	current   int
	upcasters map[int]Upcaster // from version -> from+1
}

// Registry maps event type names to payload types and upcasters.
// It is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	types map[string]*registration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]*registration{}} }

// Register adds payload type T to r; T's Go shape is schema version
// current.
func Register[T Payload](r *Registry, current int) {
	var zero T
	r.mu.Lock()
	defer r.mu.Unlock()
	r.types[zero.EventType()] = &registration{decode: decodeAs[T], current: current, upcasters: map[int]Upcaster{}}
}

// decodeAs decodes a payload of type T. Replaying a long stream is mostly
// payload decoding: go-json decodes the same JSON into the same structs
// about five times faster than encoding/json, and its no-escape variant
// lets the value stay on the stack until it is boxed into the Payload, one
// allocation fewer per event than a reflect.New (BenchmarkDecode).
func decodeAs[T Payload](data []byte) (Payload, error) {
	var v T
	if err := fastjson.UnmarshalNoEscape(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// RegisterUpcaster adds the step that turns schema version from of eventType into from+1.
func (r *Registry) RegisterUpcaster(eventType string, from int, up Upcaster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.types[eventType]
	if !ok {
		panic(fmt.Sprintf("events: upcaster for unregistered type %q", eventType))
	}
	reg.upcasters[from] = up
}

// CurrentVersion is the schema version the registered Go type of eventType
// has, or 0 when the type is unknown.
func (r *Registry) CurrentVersion(eventType string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if reg, ok := r.types[eventType]; ok {
		return reg.current
	}
	return 0
}

// Decode turns stored JSON of the given type and schema version into the
// current typed payload, upcasting step by step where needed.
func (r *Registry) Decode(eventType string, schemaVersion int, data json.RawMessage) (Payload, error) {
	r.mu.RLock()
	reg, ok := r.types[eventType]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("decode %q: %w", eventType, ErrUnknownEventType)
	}
	if schemaVersion > reg.current {
		return nil, fmt.Errorf("decode %s v%d (code knows v%d): %w", eventType, schemaVersion, reg.current, ErrSchemaTooNew)
	}
	if schemaVersion < 1 {
		return nil, fmt.Errorf("decode %s: schema version %d is not positive", eventType, schemaVersion)
	}
	for v := schemaVersion; v < reg.current; v++ {
		up, ok := reg.upcasters[v]
		if !ok {
			return nil, fmt.Errorf("decode %s v%d: %w", eventType, v, ErrNoUpcaster)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("upcast %s v%d: %w", eventType, v, err)
		}
	}
	p, err := reg.decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", eventType, schemaVersion, err)
	}
	return p, nil
}

// Default holds every payload of this package, with their upcasters.
var Default = func() *Registry {
	r := NewRegistry()
	Register[AccountOpened](r, 1)
	Register[FundsDeposited](r, 1)
	Register[FundsWithdrawn](r, 1)
	Register[AccountClosed](r, 1)
	Register[DepositReversed](r, 1)
	Register[OrderPlaced](r, 2)
	r.RegisterUpcaster(TypeOrderPlaced, 1, upcastOrderPlacedV1)
	Register[OrderPaid](r, 1)
	Register[OrderShipped](r, 1)
	Register[OrderCancelled](r, 1)
	return r
}()
