"""Catalog services, by concern: curation (drafts, validation, lifecycle), sync (shipped golden paths),
launch, archives (uploaded modules), backstage_import and page_views (template page views, for the funnel
KPIs). Import them from here."""

from apps.catalog.services.archives import attach_module_archive, attach_module_folder
from apps.catalog.services.backstage_import import create_template_from_backstage
from apps.catalog.services.curation import (
    LIFECYCLE_ACTIONS,
    TemplateData,
    create_draft_version,
    create_template,
    deprecate_version,
    diff_versions,
    publish_version,
    require_curator,
    retire_version,
    semver_key,
    update_draft,
    update_template,
    validate_version,
    version_data_of,
)
from apps.catalog.services.launch import (
    LaunchResult,
    budget_check_for,
    check_launch_input,
    estimate_launch,
    launch_hours,
    launch_input_errors,
    launch_template,
    price_launch,
)
from apps.catalog.services.page_views import record_template_view
from apps.catalog.services.sync import SyncReport, sync_manifest, sync_templates
from apps.catalog.services.variables import VariablesChange, change_workspace_variables
from apps.catalog.spec import VersionData, VersionReport
from apps.catalog.spec.limits import SEMVER

__all__ = [
    "LIFECYCLE_ACTIONS",
    "SEMVER",
    "LaunchResult",
    "SyncReport",
    "TemplateData",
    "VariablesChange",
    "VersionData",
    "VersionReport",
    "attach_module_archive",
    "attach_module_folder",
    "budget_check_for",
    "change_workspace_variables",
    "check_launch_input",
    "create_draft_version",
    "create_template",
    "create_template_from_backstage",
    "deprecate_version",
    "diff_versions",
    "estimate_launch",
    "launch_hours",
    "launch_input_errors",
    "launch_template",
    "price_launch",
    "publish_version",
    "record_template_view",
    "require_curator",
    "retire_version",
    "semver_key",
    "sync_manifest",
    "sync_templates",
    "update_draft",
    "update_template",
    "validate_version",
    "version_data_of",
]
