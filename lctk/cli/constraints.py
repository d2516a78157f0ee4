"""``lctk add-constraint``, ``sample``, ``transform`` and ``evaluate`` (the constraints engine)."""

COMMANDS: list = []
