"""The exception of the REST client, beside those of the native module."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ._stroom import StroomError


class ApiError(StroomError):
    """An HTTP error from the stroom REST API (status 400 and above).

    ``status`` is the HTTP status and ``problem`` the RFC 9457 problem
    document the server sent (``type``, ``title``, ``status``, ``detail``);
    the message carries the problem's ``detail``, which names the parameter
    and the value of a bad request.
    """

    status: int
    problem: Dict[str, Any]

    def __init__(self, status: int, problem: Dict[str, Any], message: Optional[str] = None) -> None:
        self.status = status
        self.problem = problem
        if message is None:
            title = problem.get("title") or "error"
            detail = problem.get("detail") or title
            message = f"{status} {title}: {detail}"
        super().__init__(message)

    def __reduce__(self) -> Any:
        # Exception's own reduction would call ApiError(message) on unpickling.
        return (type(self), (self.status, self.problem, str(self)))
