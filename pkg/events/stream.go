package events

// StreamTypeOf is the stream type an event type belongs to, or "" when the
// type is unknown.
func StreamTypeOf(eventType string) StreamType {
	switch eventType {
	case TypeAccountOpened, TypeFundsDeposited, TypeFundsWithdrawn, TypeAccountClosed, TypeDepositReversed:
		return StreamAccount
	case TypeOrderPlaced, TypeOrderPaid, TypeOrderShipped, TypeOrderCancelled:
		return StreamOrder
	}
	return ""
}
