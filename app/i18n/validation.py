"""Pydantic's refusals in the reply's language.

English keeps pydantic's own wording (what clients have always read); the common
error types get a message id here, translated like any other message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.i18n.catalogues import N_, translate

# pydantic error type -> message id; placeholders are the error's ``ctx`` keys.
MESSAGE_IDS: dict[str, str] = {
    "missing": N_("Field required"),
    "extra_forbidden": N_("Extra inputs are not permitted"),
    "string_type": N_("Input should be a valid string"),
    "string_too_short": N_("String should have at least {min_length} characters"),
    "string_too_long": N_("String should have at most {max_length} characters"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "int_type": N_("Input should be a valid integer"),
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_type": N_("Input should be a valid number"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "bool_type": N_("Input should be a valid boolean"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "list_type": N_("Input should be a valid list"),
    "dict_type": N_("Input should be a valid dictionary"),
    "model_type": N_("Input should be a valid dictionary or instance of {class_name}"),
    "model_attributes_type": N_(
        "Input should be a valid dictionary or object to extract fields from"
    ),
    "too_short": N_("List should have at least {min_length} items after validation"),
    "too_long": N_("List should have at most {max_length} items after validation"),
    "literal_error": N_("Input should be {expected}"),
    "enum": N_("Input should be {expected}"),
    "datetime_type": N_("Input should be a valid datetime"),
    "datetime_parsing": N_("Input should be a valid datetime, {error}"),
    "datetime_from_date_parsing": N_("Input should be a valid datetime or date, {error}"),
    "date_parsing": N_("Input should be a valid date in the format YYYY-MM-DD, {error}"),
    "timezone_aware": N_("Input should have timezone info"),
    "value_error": N_("Value error, {error}"),
    "uuid_parsing": N_("Input should be a valid UUID, {error}"),
    "json_invalid": N_("Invalid JSON: {error}"),
}


def validation_message(language: str, error: Mapping[str, Any]) -> str:
    """The text of one pydantic error (``{"type", "msg", "ctx"}``) in ``language``."""
    english = str(error.get("msg", "invalid input"))
    message_id = MESSAGE_IDS.get(str(error.get("type")))
    if language == "en" or message_id is None:
        return english
    context = {key: str(value) for key, value in (error.get("ctx") or {}).items()}
    if "error" in context:
        # A validator's own refusal (a card number in a note...): its text is a message id too.
        context["error"] = translate(language, context["error"])
    try:
        return translate(language, message_id, context)
    except (KeyError, IndexError):
        return english
