"""The one error type services raise for bad input: it names the field and the reason."""


class FieldError(ValueError):
    """Input that cannot be accepted; `field` names what was wrong, `message` says why."""

    http_status = 400
    """What the API answers; a subclass for a conflict with stored state says 409."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self) -> dict:
        return {self.field: self.message}


class RowError(FieldError):
    """A bad row of an import; `row` is 1-based (0 means the body as a whole)."""

    def __init__(self, row: int, field: str, message: str):
        super().__init__(field, message)
        self.row = row
        self.args = (f"row {row}, {field}: {message}",)

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "detail": self.message, "error": str(self)}


def int_in_range(value, low: int, high: int) -> bool:
    """An int (not a bool, which Python counts as one) between low and high inclusive."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
