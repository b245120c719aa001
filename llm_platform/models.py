"""Where Alembic and the tests find every domain's SQLAlchemy models."""

from __future__ import annotations


def import_all_models() -> None:
    """Imports each domain's models so that Base.metadata knows every table."""
    import llm_platform.audit.models
    import llm_platform.chat.models  # noqa: F401
    import models_registry.models  # noqa: F401
    import tenants.models  # noqa: F401
