"""The edges shared by the services: Kafka, Redis, HTTP helpers, logging, CLI, embedded stack."""
