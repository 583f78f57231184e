// Package projection is the runtime every projector stands on: it consumes
// the event topics, turns Kafka's at-least-once delivery into exactly-once
// effect on a read model, resumes from the point the model durably holds,
// and rebuilds, replays, verifies and repairs the model from the event
// store. A projector supplies only its Model (model.go).
//
// Resume points. A model's store, not the consumer group's committed
// offsets, says how far the model has got: every model keeps, per Kafka
// partition, the offset of the next message to read, atomically with the
// changes it describes or after them, never before. The runtime starts each
// assigned partition there, and rewinds a partition whenever the model
// reports holding less than it held before (a store restarted empty or
// restored from a backup). The group's committed offsets are only a hint
// for monitoring tools.
package projection
