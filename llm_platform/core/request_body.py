"""Request bodies of the admin and tenant APIs: unknown fields refused, PUT and PATCH forms of one shape.

A field the server does not know is refused with a 422 naming it, never ignored: `"scope": ["admin"]`
for `"scopes"` would otherwise make a key other than the one asked for. So is a string holding a NUL or a
lone UTF-16 surrogate, which the database or a UTF-8 encoder would refuse later, as a 500.

A resource's fields are declared once, each field's type saying whether null is one of its values
(`int | None`: null means something, e.g. "unlimited"; `bool`: null is refused). `replacing()` makes
its PUT body, where every field must be sent, and `patching()` its PATCH body, where a field left out
stays as it is, so the two cannot disagree on a field's range or on what null means.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import MISSING, BaseModel, ConfigDict, Field, create_model, field_validator

from llm_platform.core.unicode_text import refuse_unstorable

Fields = TypeVar("Fields", bound=BaseModel)


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Every field of every subclass (and of the PUT and PATCH forms derived below).
    _storable = field_validator("*")(refuse_unstorable)


def replacing(fields: type[Fields], name: str) -> type[Fields]:
    """The PUT body of `fields`: every field required; null only where the field's type allows it."""
    return _derive(fields, name, patch=False)


def patching(fields: type[Fields], name: str) -> type[Fields]:
    """The PATCH body of `fields`: a field left out is absent from `model_dump()`, so it stays as it is;
    null only where the field's type allows it."""
    return _derive(fields, name, patch=True)


def _derive(fields: type[Fields], name: str, *, patch: bool) -> type[Fields]:
    definitions: dict[str, Any] = {}
    for field, info in fields.model_fields.items():
        # The field's constraints (ge, max_length, ...) are in its metadata; its default is dropped.
        annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        documented = {"description": info.description, "examples": info.examples, "title": info.title}
        if patch:
            definitions[field] = (annotation | MISSING, Field(MISSING, **documented))
        else:
            definitions[field] = (annotation, Field(..., **documented))
    # A subclass of `fields` keeps its validators and docstring; RequestBody refuses unknown fields.
    return create_model(name, __base__=(RequestBody, fields), __doc__=fields.__doc__, **definitions)  # type: ignore[call-overload,no-any-return]
