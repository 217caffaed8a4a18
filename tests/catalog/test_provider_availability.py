"""Templates whose Terraform providers this installation cannot install are found at sync time by a real
`terraform init` (no registry is reachable here, so the AWS golden paths are unavailable), shown unavailable with
the reason and the fix, and refused at launch. A filesystem mirror holding a (fake) provider makes a module that
needs it available; an unresponsive mirror is bounded by the check's timeout."""

from __future__ import annotations

import io
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import Team
from apps.catalog.models import ProviderCheck, TemplateVersion
from apps.catalog.services.providers import check_providers
from apps.runs.models import Run, Workspace
from tests.factories import PASSWORD, TemplateFactory, TemplateVersionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

AWS_PATHS = {"dataset-bucket", "gpu-training-cluster", "model-endpoint", "notebook-workspace"}
BUILTIN_ONLY = {"sandbox-experiment", "feature-pipeline"}
FAKE_MODULE = """
terraform {
  required_providers {
    fake = { source = "paved/fake", version = ">= 1.0" }
  }
}
"""


@pytest.fixture
def no_mirror(settings: Any, tmp_path: Path) -> Path:
    """An empty CLI configuration: no provider mirror, so only the (unreachable) registry is tried."""
    config = tmp_path / "empty.tfrc"
    config.write_text("")
    settings.TERRAFORM_CLI_CONFIG_FILE = str(config)
    return config


@pytest.fixture
def terraform_calls(settings: Any, tmp_path: Path) -> Path:
    """The bundled terraform behind a wrapper that logs each command line to the returned file."""
    log = tmp_path / "terraform-calls.log"
    wrapper = tmp_path / "terraform"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {Path(sys.executable).parent / "terraform"} "$@"\n')
    wrapper.chmod(0o755)
    log.touch()
    settings.TERRAFORM_BIN = str(wrapper)
    return log


def inits(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("init")]


@pytest.fixture
def synced(no_mirror: Path) -> None:
    call_command("sync_templates", stdout=io.StringIO(), stderr=io.StringIO())


def shipped(slug: str) -> TemplateVersion:
    return TemplateVersion.objects.select_related("providers_check").get(template__slug=slug)


def fake_provider_mirror(root: Path) -> Path:
    """A filesystem mirror holding provider paved/fake 1.0.0 (init only installs it; nothing ever runs it) and a
    CLI configuration that installs paved/* from it."""
    package = root / "mirror" / "registry.terraform.io" / "paved" / "fake" / "1.0.0" / "linux_amd64"
    package.mkdir(parents=True)
    binary = package / "terraform-provider-fake_v1.0.0"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    config = root / "mirror.tfrc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{root / "mirror"}"\n    include = ["registry.terraform.io/paved/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/paved/*"]\n  }\n}\n'
    )
    return config


def fake_provider_version(tmp_path: Path) -> TemplateVersion:
    module = tmp_path / "needs-fake"
    module.mkdir()
    (module / "main.tf").write_text(FAKE_MODULE)
    return TemplateVersionFactory(template=TemplateFactory(slug="needs-fake"), module_path=str(module))


def test_sync_finds_the_aws_golden_paths_unavailable_and_the_builtin_only_ones_available(
    terraform_calls: Path, synced: None
) -> None:
    assert len(inits(terraform_calls)) == 1  # four modules, one provider set, one init
    for slug in AWS_PATHS:
        version = shipped(slug)
        assert version.required_providers == [["registry.terraform.io/hashicorp/aws", "~> 5.0"]]
        assert "Failed to query available provider packages" in version.providers_problem
        assert "registry.terraform.io" in version.providers_problem
    for slug in BUILTIN_ONLY:
        version = shipped(slug)
        assert (version.required_providers, version.providers_check, version.providers_problem) == ([], None, "")
    assert ProviderCheck.objects.count() == 1


def test_a_second_sync_reuses_the_verdict_without_running_init(terraform_calls: Path, synced: None) -> None:
    first = ProviderCheck.objects.get()
    assert len(inits(terraform_calls)) == 1

    out = io.StringIO()
    call_command("sync_templates", stdout=out, stderr=io.StringIO())

    assert len(inits(terraform_calls)) == 1
    again = ProviderCheck.objects.get()
    assert (again.pk, again.checked_at) == (first.pk, first.checked_at)
    assert "4 unavailable on this installation" in out.getvalue()


def test_a_verdict_older_than_the_ttl_is_checked_again(terraform_calls: Path, synced: None, settings: Any) -> None:
    first = ProviderCheck.objects.get()
    aged = first.checked_at + timedelta(seconds=settings.PROVIDER_CHECK_TTL_SECONDS, microseconds=1)

    for slug in sorted(AWS_PATHS):  # the first finds the verdict aged past the TTL; the re-check's is fresh
        check_providers(version=shipped(slug), now=aged)

    assert len(inits(terraform_calls)) == 2
    assert ProviderCheck.objects.count() == 1  # the set's one row, refreshed


def test_a_provider_mirror_in_the_cli_configuration_makes_the_module_available(
    terraform_calls: Path, no_mirror: Path, settings: Any, tmp_path: Path
) -> None:
    version = fake_provider_version(tmp_path)
    check_providers(version=version)
    assert "paved/fake" in version.providers_problem

    settings.TERRAFORM_CLI_CONFIG_FILE = str(fake_provider_mirror(tmp_path))
    check_providers(version=version)

    assert len(inits(terraform_calls)) == 2
    assert version.providers_problem == ""
    assert version.providers_check is not None
    assert version.providers_check.installable
    assert ProviderCheck.objects.count() == 2  # a new CLI configuration is a new check, not the cached verdict


class SilentServer:
    """Accepts connections and never answers: a provider mirror behind a black hole."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_an_unresponsive_mirror_is_bounded_by_the_check_timeout(
    settings: Any, tmp_path: Path, silent_server: SilentServer
) -> None:
    config = tmp_path / "network-mirror.tfrc"
    config.write_text(
        f'provider_installation {{\n  network_mirror {{\n    url = "https://127.0.0.1:{silent_server.port}/"\n  }}\n}}\n'
    )
    settings.TERRAFORM_CLI_CONFIG_FILE = str(config)
    settings.PROVIDER_CHECK_TIMEOUT_SECONDS = 3
    version = fake_provider_version(tmp_path)

    check_providers(version=version)

    assert "terraform init ran longer than 3 s" in version.providers_problem
    assert silent_server.held  # init did reach the mirror, and was cut off waiting for it


def test_the_api_refuses_to_launch_an_unavailable_template(synced: None, alice: Any, vision: Team) -> None:
    api = APIClient()
    api.force_authenticate(alice)
    payload = {"team": "vision", "name": "my-bucket", "parameters": {"bucket_name": "vision-data"}}

    response = api.post(reverse("api:template-launch", args=["dataset-bucket"]), payload, format="json")

    assert response.status_code == 409, response.content
    problem = response.json()
    assert problem["code"] == "providers_unavailable"
    assert "Failed to query available provider packages" in problem["detail"]
    assert "TF_CLI_CONFIG_FILE" in problem["detail"]
    assert "filesystem_mirror" in problem["detail"]
    assert not Workspace.objects.exists()
    assert not Run.objects.exists()


def test_the_launch_form_refuses_an_unavailable_template_with_the_reason(
    synced: None, client: Client, alice: Any, vision: Team
) -> None:
    client.login(username=alice.username, password=PASSWORD)
    url = reverse("catalog:launch", args=["dataset-bucket"])
    assert 'data-testid="providers-unavailable"' in client.get(url).content.decode()

    response = client.post(url, {"team": "vision", "name": "my-bucket", "reason": "", "p-bucket_name": "vision-data"})

    assert response.status_code == 422
    assert "its Terraform providers cannot be installed" in response.content.decode()
    assert not Workspace.objects.exists()


def test_the_catalog_marks_unavailable_templates_and_offers_no_launch_button(
    synced: None, client: Client, alice: Any
) -> None:
    client.login(username=alice.username, password=PASSWORD)

    catalog = client.get(reverse("catalog:list")).content.decode()
    detail = client.get(reverse("catalog:detail", args=["model-endpoint"])).content.decode()
    sandbox = client.get(reverse("catalog:detail", args=["sandbox-experiment"])).content.decode()

    assert all(f'data-testid="unavailable-{slug}"' in catalog for slug in AWS_PATHS)
    assert not any(f'data-testid="unavailable-{slug}"' in catalog for slug in BUILTIN_ONLY)
    assert 'data-testid="providers-unavailable"' in detail
    assert 'data-testid="launch"' not in detail
    assert "TF_CLI_CONFIG_FILE" in detail
    assert 'data-testid="launch"' in sandbox
    assert 'data-testid="providers-unavailable"' not in sandbox
