"""The exceptions jobmock raises.

The tree::

    JobmockError
    ├── SpecError              a spec file is wrong (file, key, what was expected)
    ├── ScenarioError          a scenario file is wrong
    └── ApiError               a request the API answers with one of its documented errors
        ├── Unauthenticated    no credentials            -> auth.missing
        ├── InvalidCredentials unknown credentials       -> auth.invalid
        ├── ForeignJob         another tenant's job      -> auth.foreign_job
        ├── JobNotFound        no such job               -> errors.not_found
        ├── ValidationFailed   bad body, path or query   -> errors.validation
        ├── JobEnded           cancel of an ended job    -> the cancel's when_terminal error
        ├── LimitExceeded      queue full or gate held   -> the limit's error
        ├── InsufficientCredits too few credits left     -> errors.insufficient_credits
        └── RequestRefused     refused as HTTP (413, 415, 408, 431) -> the spec's error of
                               that status, else errors.validation's shape with that status

Contract violations found by the contract suite are ``AssertionError`` subclasses
and live in ``contract_tests``; they are not part of this tree.

``ApiError``s carry no HTTP: the dispatcher maps each to the error the spec names.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ForeignJob",
    "InsufficientCredits",
    "InvalidCredentials",
    "JobEnded",
    "JobNotFound",
    "JobmockError",
    "LimitExceeded",
    "RequestRefused",
    "ScenarioError",
    "SpecError",
    "Unauthenticated",
    "ValidationFailed",
]


class JobmockError(Exception):
    """Base of every error jobmock raises on purpose."""


class SpecError(JobmockError):
    """A spec document is invalid. The message names the file, the key and what was expected."""

    def __init__(self, file: str, key: str, expected: str,
                 more: tuple[SpecError, ...] = ()) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        #: Further mistakes found in the same file, each with its own key.
        self.more = more
        text = f"{file}: at {key or '(root)'}: expected {expected}"
        for other in more:
            text += f"\n{other.file}: at {other.key or '(root)'}: expected {other.expected}"
        super().__init__(text)

    @property
    def problems(self) -> tuple[SpecError, ...]:
        """This mistake and every other one found with it."""
        return (self, *self.more)


class ScenarioError(SpecError):
    """A scenario file is invalid."""


class ApiError(JobmockError):
    """A request the API refuses with one of its named errors."""

    error_name: str = "internal"

    def __init__(self, message: str = "", *, error_name: str | None = None,
                 context: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_name is not None:
            self.error_name = error_name
        self.context = context or {}


class Unauthenticated(ApiError):
    """The request carries no credentials."""


class InvalidCredentials(ApiError):
    """The credentials are unknown, revoked or malformed."""


class ForeignJob(ApiError):
    """The job belongs to another tenant."""


class JobNotFound(ApiError):
    """No job with that id (or not under that path)."""

    error_name = "not_found"


class ValidationFailed(ApiError):
    """The body, a path parameter or a query parameter does not match its schema."""

    error_name = "validation"


class JobEnded(ApiError):
    """An operation that needs a running job (cancel) met one that has already ended."""

    error_name = "conflict"


class LimitExceeded(ApiError):
    """A queue limit or a one-in-flight gate refuses the job."""


class InsufficientCredits(ApiError):
    """The tenant's credit balance (less what its unfinished jobs hold) is below the job's cost."""

    error_name = "insufficient_credits"


class RequestRefused(ApiError):
    """A request refused for what it is as HTTP, before its API meaning: a body too large
    (413), a media type the operation does not take (415), too slow (408), headers too large
    (431). The one error that names a status: the spec's error with that status answers it,
    else its validation error's shape with that status."""

    error_name = "validation"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
