"""HTTP ingestion, compatible with Segment's HTTP Tracking API; writes touchpoints to Kafka."""
