"""The one exception type users see: a problem with their input, said in one line with what to do."""


class LctkError(Exception):
    """A user-facing error. The CLI prints its message as a single line and exits non-zero, no traceback.

    The message names the problem and, where there is one, the remedy (a command to run, a flag to pass).
    """

    exit_code = 2


class TrainingDiverged(LctkError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


def describe(e: BaseException) -> str:
    """``Type: first line of the message`` of an exception (just the message for an LctkError), for one-line
    reports of errors that are not the user's."""
    if isinstance(e, LctkError):
        return one_line(str(e))
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0].strip()}" if text else type(e).__name__


def one_line(text: str) -> str:
    """``text`` on one line (whitespace runs, newlines included, become one space)."""
    return " ".join(text.split()) or "failed"
