"""Intake: the HTTP API through which libraries register help requests."""
