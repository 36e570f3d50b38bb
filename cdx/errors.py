"""The one exception type for mistakes in what the user asked for (the bottom of the layering).

Raise `CdxUserError` for a bad config value, a missing or unreadable input file, or a request that
cannot be served as asked. `python -m cdx.run` prints its message as one line and exits with
status 2, without a traceback (`CDX_DEBUG=1` shows the traceback). The message names the bad
value and says what would be valid.
"""

from __future__ import annotations


class CdxUserError(ValueError):
    """A user error: bad config value, missing or malformed input. Its message is shown as is.

    A subclass of ValueError, so callers that already handle ValueError keep working.
    """
