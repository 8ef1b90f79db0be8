"""touchpath's pure domain core: event model, identifiers, stage rules, record layouts.

Nothing in this package performs I/O (the stage-rules loader reads one file); the collector,
processor and api packages import it and keep Kafka, Redis and HTTP at their edges.
"""

__version__ = "0.1.0"
