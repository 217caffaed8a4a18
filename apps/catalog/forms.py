"""Forms of the catalog pages. The parameter part of the launch form is generated from the version's JSON
Schema by `schema_forms`; these are the fixed fields around it and the curation forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.catalog import selectors
from apps.catalog.models import ApprovalPolicy, Template, TemplateKind, TemplateVersion
from apps.catalog.safe_yaml import MAX_YAML_BYTES as MAX_IMPORT_BYTES
from apps.catalog.schema_forms import CHOICE_TRIGGER, TEXT_TRIGGER
from apps.catalog.services import TemplateData, VersionData
from apps.catalog.spec.limits import ICONS
from apps.core.names import NAME_MAX_LENGTH, NAME_PATTERN, NAME_RULE
from apps.core.parsers import loads_bounded

# The fields of the launch form that are validated inline, as the user types or leaves them (the parameters are
# too: `schema_forms`). The rules themselves are the launch service's (`launch_input_errors`), not the form's.
INLINE_FIELDS = {"name": TEXT_TRIGGER, "ttl_hours": TEXT_TRIGGER, "team": CHOICE_TRIGGER}


class LaunchForm(forms.Form):
    """The fields around the parameters. It only parses them (a TTL that is not a number, a team that is not
    yours); the name and TTL rules are `services.launch_input_errors`, which the view adds, all errors at once."""

    name = forms.CharField(
        label="Workspace name",
        help_text=f"{NAME_RULE}; unique in the team.",
        widget=forms.TextInput(attrs={"pattern": NAME_PATTERN, "maxlength": NAME_MAX_LENGTH, "autocomplete": "off"}),
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug", empty_label=None)
    ttl_hours = forms.IntegerField(label="Time to live (hours)", required=False, widget=forms.NumberInput({"min": 1}))
    reason = forms.CharField(
        required=False, max_length=300, help_text="Optional: why you need it (shown to approvers)."
    )
    override_budget = forms.BooleanField(
        label="Override the budget", required=False, help_text="Platform admins: launch past a budget's guardrail."
    )

    def __init__(
        self,
        *args: Any,
        teams: QuerySet[Team],
        version: TemplateVersion,
        allow_override: bool = False,
        validate_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not allow_override:
            del self.fields["override_budget"]
        self._inline(validate_url)
        team_field = cast("forms.ModelChoiceField[Any]", self.fields["team"])
        team_field.queryset = teams
        if version.template.kind == TemplateKind.GPU_CLUSTER:
            # The cluster's own max_hours parameter bounds its life; a workspace TTL would not apply.
            del self.fields["ttl_hours"]
            self.fields["name"].label = "Cluster name"
            return
        if version.template.kind == TemplateKind.TRAINING_JOB:
            # A job stops by itself at its max run time; its name is its tracking experiment.
            del self.fields["ttl_hours"]
            self.fields["name"].label = "Experiment name"
            self.fields["name"].help_text = "Jobs launched under the same name are tracked and compared together."
            return
        if version.template.kind == TemplateKind.DEPLOYMENT:
            # A rollout ends by itself; the endpoint lives until it is torn down.
            del self.fields["ttl_hours"]
            self.fields["name"].label = "Endpoint name"
            self.fields["name"].help_text = "Your team's endpoint to roll out to (created the first time)."
            return
        ttl = cast(forms.IntegerField, self.fields["ttl_hours"])
        ttl.initial = version.default_ttl_hours
        if version.max_ttl_hours:
            ttl.widget.attrs["max"] = version.max_ttl_hours
            ttl.help_text = f"Destroyed automatically when it expires; at most {version.max_ttl_hours} hours."
        else:
            ttl.help_text = "Leave empty to keep it until you destroy it."

    def _inline(self, validate_url: str | None) -> None:
        """htmx attributes: each field posts the whole form to the launch's validation view as it changes, which
        answers that field's errors (and refreshes the estimate out of band)."""
        for name, trigger in INLINE_FIELDS.items():
            if name not in self.fields:
                continue
            attrs = self.fields[name].widget.attrs
            attrs["aria-describedby"] = f"meta-{name}-errors"
            if validate_url:
                attrs.update(
                    {
                        "hx-post": validate_url,
                        "hx-trigger": trigger,
                        "hx-target": f"#meta-{name}-errors",
                        "hx-swap": "innerHTML",
                        "hx-include": "closest form",
                        "hx-vals": json.dumps({"_field": name, "_form": "meta"}),
                    }
                )


class TemplateForm(forms.Form):
    slug = forms.SlugField(max_length=63, help_text="Lowercase letters, digits and dashes; never changes.")
    name = forms.CharField(max_length=100)
    summary = forms.CharField(max_length=200, help_text="One line shown on catalog cards.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}), help_text="Markdown.")
    kind = forms.ChoiceField(choices=TemplateKind.choices)
    icon = forms.ChoiceField(choices=[(icon, icon) for icon in ICONS])
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. gpu, training.")
    owner_team = forms.ModelChoiceField(
        queryset=Team.objects.all(), to_field_name="slug", required=False, help_text="Empty: platform-owned."
    )
    visible_to = forms.ModelMultipleChoiceField(
        queryset=Team.objects.all(),
        to_field_name="slug",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to share it with every team.",
    )

    @classmethod
    def initial_for(cls, template: Template) -> dict[str, Any]:
        return {
            "slug": template.slug,
            "name": template.name,
            "summary": template.summary,
            "description": template.description,
            "kind": template.kind,
            "icon": template.icon,
            "tags": ", ".join(template.tags.values_list("name", flat=True)),
            "owner_team": template.owner_team.slug if template.owner_team else None,
            "visible_to": list(template.visible_to.values_list("slug", flat=True)),
        }

    def to_data(self) -> TemplateData:
        data = self.cleaned_data
        teams = list(data["visible_to"])
        return TemplateData(
            slug=data["slug"],
            name=data["name"],
            summary=data["summary"],
            description=data["description"],
            kind=data["kind"],
            icon=data["icon"],
            tags=[tag.strip() for tag in data["tags"].split(",") if tag.strip()],
            owner_team=data["owner_team"],
            visible_to=teams or None,
        )


class JsonField(forms.CharField):
    """A textarea holding a JSON object."""

    widget = forms.Textarea(attrs={"rows": 14, "class": "code", "spellcheck": "false"})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return {}
        try:
            parsed = loads_bounded(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
        except ValueError as exc:  # nested deeper than API_MAX_JSON_DEPTH, unbalanced, or NaN/Infinity
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Must be a JSON object ({...}).")
        return parsed

    def prepare_value(self, value: Any) -> Any:
        """Text as typed; an object as indented JSON; nothing (a new form) as an empty box, never `null`."""
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, indent=2)


# A new template's first version starts from this: a small schema that passes the template contract (a choice,
# a bounded number and a boolean, each with a title and a default), so the preview shows a working form at once.
EXAMPLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["size"],
    "additionalProperties": False,
    "properties": {
        "size": {"type": "string", "title": "Size", "enum": ["small", "medium", "large"], "default": "small"},
        "replicas": {"type": "integer", "title": "Replicas", "minimum": 1, "maximum": 4, "default": 1},
        "public": {"type": "boolean", "title": "Reachable from the internet", "default": False},
    },
}
EXAMPLE_UI: dict[str, Any] = {"ui:order": ["size", "replicas", "public"]}


def module_choices() -> list[tuple[str, str]]:
    return [("", "— none —"), *((path, Path(path).name) for path in selectors.shipped_module_folders())]


class VersionForm(forms.Form):
    version = forms.RegexField(regex=r"^\d+\.\d+\.\d+$", max_length=32, help_text="Semantic version, e.g. 1.2.0.")
    changelog = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    parameters_schema = JsonField(label="Parameters (JSON Schema)")
    ui_schema = JsonField(label="UI hints", required=False)
    price_model = JsonField(label="Price model", required=False)
    module_path = forms.ChoiceField(label="Terraform module", required=False, choices=module_choices)
    module_archive = forms.FileField(
        label="…or upload a module archive", required=False, help_text=".zip or .tar.gz of .tf files, at most 5 MB."
    )
    default_ttl_hours = forms.IntegerField(required=False, min_value=1)
    max_ttl_hours = forms.IntegerField(required=False, min_value=1)
    approval_policy = forms.ChoiceField(choices=ApprovalPolicy.choices)
    approval_threshold = forms.DecimalField(
        required=False, min_value=0, decimal_places=2, max_digits=12, help_text="Hourly estimate above which to ask."
    )
    plan_timeout_seconds = forms.IntegerField(required=False, min_value=10, help_text="Empty: platform default.")
    apply_timeout_seconds = forms.IntegerField(required=False, min_value=10, help_text="Empty: platform default.")

    def __init__(self, *args: Any, current_module: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        module = cast(forms.ChoiceField, self.fields["module_path"])
        choices = module_choices()
        if current_module and current_module not in dict(choices):
            module.choices = [*choices, (current_module, f"uploaded ({current_module})")]

    @classmethod
    def initial_for(cls, version: TemplateVersion) -> dict[str, Any]:
        return {name: getattr(version, name) for name in version.content()}

    def to_data(self) -> VersionData:
        data = self.cleaned_data
        return VersionData(
            version=data["version"],
            parameters_schema=data["parameters_schema"],
            ui_schema=data["ui_schema"] or {},
            module_path=data["module_path"] or "",
            price_model=data["price_model"] or {"currency": "USD", "base_hourly": "0", "components": []},
            default_ttl_hours=data["default_ttl_hours"],
            max_ttl_hours=data["max_ttl_hours"],
            approval_policy=data["approval_policy"],
            approval_threshold=data["approval_threshold"],
            plan_timeout_seconds=data["plan_timeout_seconds"],
            apply_timeout_seconds=data["apply_timeout_seconds"],
            changelog=data["changelog"],
        )


class SchemaPreviewForm(forms.Form):
    """What the schema editor posts as the curator types: the version's JSON documents and the template's kind
    (prefix "v" like VersionForm, so the editor sends its own fields)."""

    parameters_schema = JsonField(required=False)
    ui_schema = JsonField(required=False)
    price_model = JsonField(required=False)

    def to_data(self) -> VersionData:
        data = self.cleaned_data
        return VersionData(
            parameters_schema=data["parameters_schema"],
            ui_schema=data["ui_schema"] or {},
            price_model=data["price_model"] or VersionData().price_model,
        )


class BackstageImportForm(forms.Form):
    content = forms.CharField(
        label="Backstage template.yaml",
        required=False,
        widget=forms.Textarea(attrs={"rows": 16, "class": "code", "spellcheck": "false"}),
        help_text="Paste a scaffolder.backstage.io/v1beta3 Template, or upload the file below.",
    )
    file = forms.FileField(required=False)
    owner_team = forms.ModelChoiceField(
        queryset=Team.objects.all(), to_field_name="slug", required=False, help_text="Empty: platform-owned."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise forms.ValidationError("The file is larger than 256 KB.")
            data["content"] = upload.read().decode("utf-8", errors="replace")
        if not data.get("content"):
            raise forms.ValidationError("Paste the template or upload its file.")
        return data
