"""The project's base exception, so that entry points can print one clear line.

Why: every user-facing failure (a missing toolchain, a port in use, a bad
tenant spec) must end as a single readable message, not a stack trace.  Entry
points catch :class:`VClusterError` and print ``error: <message>``.
"""


class VClusterError(Exception):
    """An error whose message is meant for the user as is."""
