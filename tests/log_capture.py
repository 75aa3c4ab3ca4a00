"""A logging handler that keeps every record, and renders all of it for leak scans."""

import logging
import traceback


class Capture(logging.Handler):
    """Every record any logger emits, as the host's handlers would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Message, every attribute (args, extras) and the exception of each record."""
        formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
        parts = []
        for record in self.records:
            parts.append(formatter.format(record))
            parts.append(repr(vars(record)))
            if record.exc_info and record.exc_info[1] is not None:
                parts.append("".join(traceback.format_exception(record.exc_info[1])))
        return "\n".join(parts)
