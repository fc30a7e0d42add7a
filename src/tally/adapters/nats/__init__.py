"""NATS JetStream adapters: the scaled event log and settlement's durable consumer."""
