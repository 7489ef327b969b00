"""The one error type the builder raises: a single line naming the file or interface."""


class BuildError(Exception):
    """A build cannot go on; str(error) is the whole message, one line."""
