"""The one error type a stage raises for a user to act on; the command line prints it as an
``error:`` line (exit status 2), the service maps its own errors to 4xx answers."""

from __future__ import annotations


class StageError(RuntimeError):
    """A stage cannot do what was asked: a missing artefact (the message names the command to
    run first), bad input, a server that does not answer. The message is for the user."""


class MissingArtefact(StageError):
    """An artefact a stage reads is not in the workspace yet: the message names the command that
    writes it."""
