"""Event envelope, event types and topics: the contracts between services."""
