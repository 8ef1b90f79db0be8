"""Channel adapters: each turns one tool's webhook format into touchpoints (pure)."""
