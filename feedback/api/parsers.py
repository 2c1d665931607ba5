"""The API's JSON parser (settings.REST_FRAMEWORK's DEFAULT_PARSER_CLASSES), for every endpoint.

Kept free of model imports: DRF loads it while importing its views.
"""
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from feedback.services.validation import JSON_MAX_DEPTH, json_problem

TOO_DEEP = f"is nested too deeply (more than {JSON_MAX_DEPTH} levels)"


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing what would fail later: deep nesting, NUL, lone surrogates."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - the body {TOO_DEEP}") from None
        problem = json_problem(data)
        if problem:
            raise ValidationError({problem[0] or "body": [problem[1]]})
        return data
