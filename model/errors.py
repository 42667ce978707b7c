"""The model package's exceptions and warnings (bad patient input, bad bundles), and the exit code
of docs/cli.md each error ends a command with.

Every command maps errors to exit codes with :func:`exit_code` (and prints them with
:func:`report_failure`): 2 for input the command cannot work with (an error class saying
``exit_code = EXIT_USAGE``), 130 for Ctrl-C, 1 for everything else.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable

#: Exit codes of docs/cli.md.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field.

    Attributes
    ----------
    field : str
        Patient field name as in the API (``"body"`` when the input as a whole is wrong).
    message : str
        What is wrong, readable without the field name, e.g.
        ``"must be between 0 and 100 (got 150)"``.
    """

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InputError(ValueError):
    """Patient input that cannot be used, with every problem found (not only the first).

    ``str(error)`` is one line per problem, ``field: message``; :meth:`to_dict` is the body of the
    API's error answer, ``{"errors": [{"field": ..., "message": ...}]}``.
    """

    #: HTTP status an API answers with: the request was understood but its content is invalid.
    status_code = 422
    exit_code = EXIT_USAGE

    def __init__(self, errors: Iterable[FieldError]):
        self.errors: list[FieldError] = list(errors)
        if not self.errors:
            raise ValueError("InputError needs at least one FieldError")
        super().__init__("\n".join(str(error) for error in self.errors))

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return {"errors": [error.to_dict() for error in self.errors]}


class BundleError(Exception):
    """A model bundle failed verification or cannot be used.

    Attributes
    ----------
    check : str
        Which check failed, e.g. ``"file-hash"``, ``"manifest-hash"``, ``"format-version"``.
    file : str or None
        The bundle file concerned (a name inside the bundle directory), or the directory itself.
    """

    def __init__(self, check: str, file: str | None, detail: str):
        self.check = check
        self.file = file
        where = f" ({file})" if file else ""
        super().__init__(f"bundle check '{check}' failed{where}: {detail}")


class BundleVersionWarning(UserWarning):
    """Installed package versions differ from those the bundle was written with."""


class CohortError(ValueError):
    """A cohort file that cannot be used, with one line a problem."""

    exit_code = EXIT_USAGE

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        shown = problems[:50]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        if len(problems) == 1:
            super().__init__(f"{source}: {problems[0]}")
        else:
            super().__init__(f"{source}: {len(problems)} problems\n" + "\n".join(shown) + more)


class ConfigurationError(Exception):
    """The operator's configuration cannot be served safely (e.g. a signing key too short).

    Raised at start-up, before anything is served; the message says what to change.
    """


def exit_code(error: BaseException) -> int:
    """The exit code a command ends with after ``error`` (docs/cli.md, "Exit codes")."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return getattr(error, "exit_code", EXIT_FAILURE)


def failure_lines(error: BaseException) -> list[str]:
    """What to tell the user about ``error``: one line a problem, no stack trace."""
    if isinstance(error, KeyboardInterrupt):
        return ["interrupted"]
    if isinstance(error, InputError):
        return [str(problem) for problem in error.errors]
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return [f"{error.strerror or error}{where}"]
    return [str(error)]


def report_failure(command: str, error: BaseException) -> int:
    """Print ``error`` to stderr prefixed ``cart-risk COMMAND:``; return its exit code."""
    for line in failure_lines(error):
        print(f"cart-risk {command}: {line}", file=sys.stderr)
    return exit_code(error)
