"""The limits, name patterns and choices of the template contract, in one place.

Every template version, whichever way it arrives (a shipped `template.yaml`, a Backstage import, the curation
editor or the API), is checked against these by `apps.catalog.spec`, and every launch's parameters by
`apps.catalog.schema`. Nothing here needs Django.
"""

from __future__ import annotations

import re

from apps.core.limits import MAX_TTL_HOURS as MAX_TTL_HOURS  # shared with the runs and clusters APIs

# --- Parameters (what reaches terraform.tfvars.json) ---------------------------------------------------------

MAX_STRING_LENGTH = 1024  # every string parameter, whatever its schema says
MAX_ARRAY_ITEMS = 100  # every list parameter
MAX_PARAMETERS_BYTES = 16_384  # all parameters of a launch, as compact JSON

PARAMETER_TYPES = ("string", "integer", "number", "boolean", "array")
SCALAR_TYPES = ("string", "integer", "number", "boolean")
STRING_CONSTRAINTS = ("enum", "const", "pattern", "format")  # a string with none of these is free text
DRAFT_07_URIS = frozenset({"http://json-schema.org/draft-07/schema", "https://json-schema.org/draft-07/schema"})

# A parameter becomes a Terraform variable of the same name.
PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Names Terraform refuses for a variable (meta-arguments of a module block).
TERRAFORM_RESERVED = frozenset({"source", "version", "providers", "count", "for_each", "lifecycle", "depends_on"})
TERRAFORM_RESERVED |= frozenset({"locals"})

# --- Templates and versions ----------------------------------------------------------------------------------

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
TEAM_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,50}$")

KINDS = ("terraform", "gpu_cluster", "deployment", "training_job")
MODULE_LESS_KINDS = ("gpu_cluster", "deployment", "training_job")  # launched by a service, not Terraform: no module
ICONS = ("gpu", "notebook", "endpoint", "bucket", "flask", "pipeline")
APPROVAL_POLICIES = ("never", "always", "cost_above")

MAX_NAME_LENGTH = 100  # a template's name, a parameter's title, a price component's label
MAX_SUMMARY_LENGTH = 200
MIN_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600

# --- Price models --------------------------------------------------------------------------------------------

DECIMAL = re.compile(r"^\d{1,9}(\.\d{1,8})?$")  # a non-negative price, as a string (never a float)
CURRENCY = re.compile(r"^[A-Z]{3}$")
PRICE_KEYS = ("currency", "base_hourly", "components")
CATALOG_PRICE_KIND = "hourly_from_instance_catalog"
PRICE_KINDS = ("hourly_by_value", "hourly_per_unit", "hourly_if_true", CATALOG_PRICE_KIND)
COMPONENT_KEYS = ("label", "parameter", "multiply_by", *PRICE_KINDS)
CATALOG_PRICE_KEYS = ("region", "purchase_option")
CATALOG_CURRENCY = "USD"  # the GPU instance catalog's prices
