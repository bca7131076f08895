class DataError(ValueError):
    """Bad input data: the message names the file, row or key and says what to do."""
