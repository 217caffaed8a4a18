"""Workspaces and runs keep the module folder they were created with, so the engine never reads the catalog.
Existing rows get their template version's."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    versions = apps.get_model("catalog", "TemplateVersion").objects
    for name in ("Workspace", "Run"):
        model = apps.get_model("runs", name)
        path = versions.filter(pk=OuterRef("template_version_id")).values("module_path")[:1]
        model.objects.update(module_path=Subquery(path))


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0001_initial"),
        ("runs", "0006_workspace_forgotten_deleted"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="module_path",
            field=models.CharField(
                blank=True,
                help_text="Terraform module folder it runs, relative to the repository or absolute.",
                max_length=300,
            ),
        ),
        migrations.AddField(
            model_name="workspace",
            name="module_path",
            field=models.CharField(
                blank=True, help_text="The version's Terraform module folder, copied at launch.", max_length=300
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
