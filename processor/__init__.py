"""The Kafka consumer group that stitches touchpoints into journeys and stages in Redis."""
