"""A tenant's default settings are one set of values wherever they surface: the table, the admin API's
schema and the policy the request path applies to a tenant that never changed them."""

from __future__ import annotations

from dataclasses import asdict

from tenants.models import TenantSettings
from tenants.policy import CachePolicy
from tenants.schemas import SettingsFields
from tenants.settings_defaults import SETTINGS_DEFAULTS

EXPECTED = {  # the platform's documented defaults; changing one is a decision, not a refactor
    "cache_enabled": True,
    "cache_ttl_s": 3600,
    "cache_max_entry_bytes": 256 * 1024,
    "cache_sampled": False,
    "audit_store_text": False,
}


def test_the_defaults_are_the_documented_ones():
    assert asdict(SETTINGS_DEFAULTS) == EXPECTED


def test_the_table_the_schema_and_the_policy_read_them():
    columns = TenantSettings.__table__.columns
    assert {name: columns[name].default.arg for name in EXPECTED} == EXPECTED
    assert SettingsFields().model_dump() == EXPECTED
    properties = SettingsFields.model_json_schema()["properties"]
    assert {name: properties[name]["default"] for name in EXPECTED} == EXPECTED  # the OpenAPI document
    policy = CachePolicy()
    assert (policy.enabled, policy.ttl_s, policy.max_entry_bytes, policy.sampled) == (
        True,
        3600,
        256 * 1024,
        False,
    )
