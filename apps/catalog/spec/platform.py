"""The platform variables, as the template contract names them. They are defined once, with the work-dir layout
that writes them into every run and every module validation, in `apps.runs.workdir`."""

from apps.runs.workdir import (
    PLATFORM_FILE,
    PLATFORM_VARIABLES,
    PLATFORM_VARIABLES_TF,
    platform_values,
    write_platform_file,
)

__all__ = ["PLATFORM_FILE", "PLATFORM_VARIABLES", "PLATFORM_VARIABLES_TF", "platform_values", "write_platform_file"]
