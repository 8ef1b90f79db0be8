"""The webhook dispatcher process (``touchpath webhooks``)."""
