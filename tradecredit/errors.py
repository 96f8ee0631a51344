"""The one error type a stage raises for a user to act on; the command line prints it as an
``error:`` line (exit status 2), the service maps its own errors to 4xx answers."""

from __future__ import annotations


class StageError(RuntimeError):
    """A stage cannot do what was asked: a missing artefact (the message names the command to
    run first), bad input, a server that does not answer. The message is for the user;
    ``warnings`` are what the stage noticed before it failed (a tuning worker that died), printed
    before the error so that nothing it knew is lost."""

    def __init__(self, message: str, warnings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.warnings = warnings


class MissingArtefact(StageError):
    """An artefact a stage reads is not in the workspace yet: the message names the command that
    writes it."""
