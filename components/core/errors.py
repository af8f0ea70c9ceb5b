"""The one error type a user sees: a one-line reason that names the file or parameter and the fix."""


class CxrError(Exception):
    """Bad input or an unreachable resource. The CLI prints `cxr: <message>` and exits 2."""
