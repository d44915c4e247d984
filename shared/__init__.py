"""The IDO platform's shared kernel: envelope, outbox, idempotent consumer, settings, logging.

Every service uses these pieces; no service imports another service's code.
"""
