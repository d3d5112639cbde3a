"""Kept for importers of the old location: every name now lives in :mod:`watchkeeper.naming`."""

from watchkeeper.naming import MANAGED_TAG, OVERVIEW_UID, UID_PATTERN, dashboard_uid, parse_link

__all__ = ["MANAGED_TAG", "OVERVIEW_UID", "UID_PATTERN", "dashboard_uid", "parse_link"]
