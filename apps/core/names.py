"""The one rule for the names users give things (workspaces, clusters, endpoints, models, job definitions...).

A name ends up in URLs, Terraform workspace and resource names, EC2 tags and MLflow experiments, so it is a
lowercase slug: 3 to 40 letters, digits or dashes, starting with a letter. Services call `name_problem` and raise
their own error (each keeps its stable `code`); forms show the same sentence and hint with `NAME_PATTERN`.
"""

from __future__ import annotations

import re

NAME_MIN_LENGTH, NAME_MAX_LENGTH = 3, 40
NAME = re.compile(rf"^[a-z][a-z0-9-]{{{NAME_MIN_LENGTH - 1},{NAME_MAX_LENGTH - 1}}}$")
NAME_PATTERN = NAME.pattern
NAME_RULE = f"{NAME_MIN_LENGTH}-{NAME_MAX_LENGTH} lowercase letters, digits or dashes, starting with a letter"


def name_problem(name: object, *, what: str = "A name") -> str | None:
    """Why `name` is not a valid name for `what` ("A cluster name"), as a sentence; None when it is valid."""
    if isinstance(name, str) and NAME.match(name):
        return None
    return f"{what} is {NAME_RULE} (e.g. 'bert-finetune')."
