"""The one error type of the message conversions."""


class ConversionError(ValueError):
    """A message is malformed or cannot be converted (the caller drops it and logs why)."""
