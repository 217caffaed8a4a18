"""The template contract: what a template version must be to be published, in one place.

    limits      limits, name patterns and choices (string and parameter caps, slugs, versions, kinds, prices)
    platform    the platform variables Paved sets on every run, and the `paved_platform.tf` that declares them
    parameters  the one checker of a parameters JSON Schema (`check_schema`, `schema_warnings`)
    price       the one checker of a price model (`check_price_model`)
    version     `VersionData`, and `validate_version_data`, which runs all of them (and the module or cluster
                checks) and returns keyed errors and warnings

`template.yaml` loading, the Backstage import, the curation editor and the API all produce a `VersionData` and go
through `validate_version_data`; publishing, an admin's or `sync_templates`'s, refuses a version with errors.
"""

from apps.catalog.spec.limits import MAX_ARRAY_ITEMS, MAX_PARAMETERS_BYTES, MAX_STRING_LENGTH
from apps.catalog.spec.parameters import check_schema, schema_findings, schema_warnings
from apps.catalog.spec.platform import PLATFORM_FILE, PLATFORM_VARIABLES, platform_values, write_platform_file
from apps.catalog.spec.price import check_price_model, price_findings
from apps.catalog.spec.report import Finding, VersionReport
from apps.catalog.spec.version import VersionData, validate_version_data

__all__ = [
    "MAX_ARRAY_ITEMS",
    "MAX_PARAMETERS_BYTES",
    "MAX_STRING_LENGTH",
    "PLATFORM_FILE",
    "PLATFORM_VARIABLES",
    "Finding",
    "VersionData",
    "VersionReport",
    "check_price_model",
    "check_schema",
    "platform_values",
    "price_findings",
    "schema_findings",
    "schema_warnings",
    "validate_version_data",
    "write_platform_file",
]
