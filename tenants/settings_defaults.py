"""A tenant's settings until it changes them, written once: the table's column defaults, the admin API's
schema (and so its OpenAPI document), the unsaved settings it shows and the policy the request path
applies all read them here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SettingsDefaults:
    cache_enabled: bool = True
    cache_ttl_s: int = 3600
    cache_max_entry_bytes: int = 256 * 1024
    cache_sampled: bool = False  # sampled answers, repeated, would all get one text: the tenant opts in
    audit_store_text: bool = False  # prompts and answers are the tenant's data: only hashes unless asked


SETTINGS_DEFAULTS = SettingsDefaults()
