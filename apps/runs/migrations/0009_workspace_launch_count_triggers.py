"""Keep `catalog.Template.launch_count` current in the database: a trigger on the workspace table adds one to the
template of an inserted workspace, takes one off for a deleted one, and moves one when a workspace is re-pinned
to a version of another template, in the statement's own transaction. Every way a workspace row is written
(the launch service, bulk_create, fixtures, the admin) is counted, and the catalog never aggregates the
workspace table again. The existing workspaces are counted once here (the backfill).

PostgreSQL and SQLite (the two databases Paved runs on) each get their dialect's triggers."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

BACKFILL = """
UPDATE catalog_template SET launch_count = (
    SELECT count(*) FROM runs_workspace
    JOIN catalog_templateversion ON catalog_templateversion.id = runs_workspace.template_version_id
    WHERE catalog_templateversion.template_id = catalog_template.id
);
"""

# The template of a workspace's version; NEW / OLD are spliced in below.
_TEMPLATE_OF = "(SELECT template_id FROM catalog_templateversion WHERE id = {row}.template_version_id)"
_ADD = "UPDATE catalog_template SET launch_count = launch_count + 1 WHERE id = " + _TEMPLATE_OF.format(row="NEW")
_TAKE = "UPDATE catalog_template SET launch_count = launch_count - 1 WHERE id = " + _TEMPLATE_OF.format(row="OLD")

POSTGRES_CREATE = f"""
CREATE OR REPLACE FUNCTION runs_workspace_launch_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_TAKE};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_ADD};
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS runs_workspace_launch_count ON runs_workspace;
CREATE TRIGGER runs_workspace_launch_count AFTER INSERT OR DELETE ON runs_workspace
    FOR EACH ROW EXECUTE FUNCTION runs_workspace_launch_count();
DROP TRIGGER IF EXISTS runs_workspace_launch_count_repin ON runs_workspace;
CREATE TRIGGER runs_workspace_launch_count_repin AFTER UPDATE OF template_version_id ON runs_workspace
    FOR EACH ROW WHEN (OLD.template_version_id IS DISTINCT FROM NEW.template_version_id)
    EXECUTE FUNCTION runs_workspace_launch_count();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS runs_workspace_launch_count ON runs_workspace;
DROP TRIGGER IF EXISTS runs_workspace_launch_count_repin ON runs_workspace;
DROP FUNCTION IF EXISTS runs_workspace_launch_count();
"""

SQLITE_CREATE = [
    "DROP TRIGGER IF EXISTS runs_workspace_launch_count_insert",
    f"CREATE TRIGGER runs_workspace_launch_count_insert AFTER INSERT ON runs_workspace BEGIN {_ADD}; END",
    "DROP TRIGGER IF EXISTS runs_workspace_launch_count_delete",
    f"CREATE TRIGGER runs_workspace_launch_count_delete AFTER DELETE ON runs_workspace BEGIN {_TAKE}; END",
    "DROP TRIGGER IF EXISTS runs_workspace_launch_count_repin",
    "CREATE TRIGGER runs_workspace_launch_count_repin AFTER UPDATE OF template_version_id ON runs_workspace "
    f"WHEN OLD.template_version_id IS NOT NEW.template_version_id BEGIN {_TAKE}; {_ADD}; END",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS runs_workspace_launch_count_insert",
    "DROP TRIGGER IF EXISTS runs_workspace_launch_count_delete",
    "DROP TRIGGER IF EXISTS runs_workspace_launch_count_repin",
]


def forwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_CREATE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement, params=None)
    schema_editor.execute(BACKFILL, params=None)


def backwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0008_run_approval_reason"),
        ("catalog", "0005_template_launch_count"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
