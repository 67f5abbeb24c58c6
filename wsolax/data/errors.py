"""The one exception type raised for a broken dataset."""


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or inconsistent.

    Subclasses ValueError so callers that already guard against bad input keep
    working; messages always name the offending file (and line / image id where
    there is one) so the user can fix the data without a debugger.
    """
