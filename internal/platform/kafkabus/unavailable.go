package kafkabus

import (
	"errors"

	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/platform/neterr"
)

// Temporary reports whether err is a Kafka error worth another try: a leader
// moving, a topic created a moment ago, a broker not yet ready.
func Temporary(err error) bool {
	var kerr kafka.Error
	return errors.As(err, &kerr) && kerr.Temporary()
}

// Unavailable reports whether err means the brokers could not be reached or
// cannot serve for now (Temporary), rather than that the request is wrong.
func Unavailable(err error) bool {
	return err != nil && (neterr.Is(err) || Temporary(err))
}
