"""What a check of the template contract finds: keyed findings, errors and warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

# The curator reads findings grouped by what they are about; a key's root names the group.
_SECTIONS = (
    ("module.variables", "Module"),
    ("parameters", "Parameters schema"),
    ("ui", "UI hints"),
    ("price", "Price model"),
    ("cluster", "Cluster settings"),
)

# Keys whose root names one of the version's JSON documents (the editor's textareas).
_DOCUMENTS = frozenset({"parameters", "ui", "price"})


@dataclass(frozen=True)
class Finding:
    """One problem: `key` says where (`parameters.properties.size.default`, `price.components[0].parameter`,
    `version`), `message` is a sentence that stands on its own. Errors block publishing; warnings do not."""

    key: str
    message: str
    error: bool = True

    @property
    def pointer(self) -> str:
        """Where in its JSON document the finding points, as a JSON Pointer (RFC 6901): `parameters.properties.size
        .default` is `/properties/size/default` of the parameters schema, `price.components[0]` is `/components/0`
        of the price model; "" for a finding about no JSON document (`version`, `module.variables`...)."""
        root, _, rest = self.key.replace("[", ".").replace("]", "").partition(".")
        if root not in _DOCUMENTS:
            return ""
        parts = [part for part in rest.split(".") if part]
        return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)

    @property
    def document(self) -> str:
        """The JSON document the pointer is into ("parameters", "ui", "price"), or ""."""
        root = self.key.replace("[", ".").partition(".")[0]
        return root if root in _DOCUMENTS else ""

    @property
    def sentence(self) -> str:
        """The message with its group (`Price model: ...`), as the version page and the API show it."""
        for prefix, section in _SECTIONS:
            if self.key == prefix or self.key.startswith((f"{prefix}.", f"{prefix}[")):
                return f"{section}: {self.message}"
        return self.message


def error(key: str, message: str) -> Finding:
    return Finding(key, message, error=True)


def warning(key: str, message: str) -> Finding:
    return Finding(key, message, error=False)


@dataclass
class VersionReport:
    """Every finding of `validate_version_data`, in the order the checks ran."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [finding.sentence for finding in self.findings if finding.error]

    @property
    def warnings(self) -> list[str]:
        return [finding.sentence for finding in self.findings if not finding.error]

    @property
    def first_error(self) -> Finding | None:
        return next((finding for finding in self.findings if finding.error), None)

    @property
    def ok(self) -> bool:
        return self.first_error is None
