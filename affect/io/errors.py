"""The one exception type of media reading: :class:`MediaReadError`, carrying a counted status."""

from __future__ import annotations

from affect.errors import InputFileError

#: What a media file that cannot be used ends with (the callers count these by name).
MEDIA_STATUSES = ("not_found", "unreadable", "too_large")


class MediaReadError(InputFileError):
    """An image, video or audio stream that is missing, cannot be decoded, or is above a size cap.

    ``status`` is one of :data:`MEDIA_STATUSES`; the message names the file (and, for
    ``too_large``, the cap and the option that sets it).
    """

    def __init__(self, message: str, status: str = "unreadable") -> None:
        if status not in MEDIA_STATUSES:
            raise ValueError(f"unknown media status {status!r}; expected one of {MEDIA_STATUSES}")
        super().__init__(message)
        self.status = status
