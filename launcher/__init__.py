"""``touchpath``: the command line and the local stack (imports every service)."""
