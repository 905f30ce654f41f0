"""Edges shared by every service: logging, Kafka clients, PostgreSQL pool, heartbeats."""
