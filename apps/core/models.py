"""Shared model bases: every Paved row knows when it was created and last changed; log output comes in chunks."""

from django.db import models


class BaseModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class LogChunk(models.Model):
    """Output appended in chunks of many lines (about one row a second), never a row per line: a run's Terraform
    output, a training job's as its agent sends it. Subclasses add the owner's foreign key and the uniqueness of
    (owner, seq); `first_line` lets a resent chunk be recognised."""

    seq = models.PositiveIntegerField()
    first_line = models.PositiveIntegerField(help_text="Line number (from 1) of the chunk's first line.")
    line_count = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
