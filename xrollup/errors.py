"""The one tree of expected errors. Core code raises these; the gRPC shells map
them to status codes in one table (xrollup/grpc_status.py). Nothing here imports grpc."""

from __future__ import annotations


class XrollupError(Exception):
    """Base of every expected error; the message says what was wrong."""


class InvalidInput(XrollupError):
    """Malformed or missing input (INVALID_ARGUMENT)."""


class BadSignature(XrollupError):
    """A signature does not verify over the body bytes (UNAUTHENTICATED)."""


class NotAuthorized(XrollupError):
    """Validly signed, but by a key that may not act for the account (PERMISSION_DENIED)."""


class WrongSigners(NotAuthorized):
    """The signatures verify but are not by exactly the accounts the body names."""


class Refused(XrollupError):
    """Refused by the current state, e.g. an expired submission (FAILED_PRECONDITION)."""


class Expired(Refused):
    """The submission's expiry height has passed."""


class ArithmeticOverflow(Refused, OverflowError):
    """A typed integer would leave its range (a balance past 2^64 - 1, below 0)."""


class Conflict(XrollupError):
    """A conflict: retry the whole operation (ABORTED)."""


class AlreadyExists(XrollupError):
    """A create that would replace something that exists, e.g. a snapshot name (ALREADY_EXISTS)."""


class NotFound(XrollupError):
    """The thing asked for does not exist (NOT_FOUND)."""


class Unavailable(XrollupError):
    """Not ready, shutting down or recovering; retry later (UNAVAILABLE)."""


class LimitExceeded(XrollupError):
    """Over a configured limit: sizes, counts, amounts (RESOURCE_EXHAUSTED)."""


class PoolFull(LimitExceeded):
    """The pending pool is full; back off and retry (RESOURCE_EXHAUSTED)."""
