"""Every table of the platform in one metadata: import_all_models imports each domain's SQLAlchemy
models, for Alembic (migrations/env.py) and the tests that compare the migrations with the models."""

from __future__ import annotations


def import_all_models() -> None:
    """Imports each domain's models so that Base.metadata knows every table."""
    import llm_platform.audit.models
    import llm_platform.chat.models
    import llm_platform.knowledge.models  # noqa: F401
    import models_registry.models  # noqa: F401
    import tenants.models  # noqa: F401
