"""The one exception type users see: a problem with their input, said in one line with what to do."""


class LctkError(Exception):
    """A user-facing error. The CLI prints its message as a single line and exits non-zero, no traceback.

    The message names the problem and, where there is one, the remedy (a command to run, a flag to pass).
    """

    exit_code = 2


class TrainingDiverged(LctkError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3
