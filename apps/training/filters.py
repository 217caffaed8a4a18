"""FilterSets of the training jobs and definitions API: a cluster or definition is filtered by its id (a bounded
integer, like every id)."""

from __future__ import annotations

import django_filters

from apps.training.models import ConcurrencyPolicy, Framework, JobDefinition, JobState, TrainingJob


class TrainingJobFilterSet(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=JobState.choices)
    cluster = django_filters.NumberFilter(field_name="cluster_id")
    framework = django_filters.ChoiceFilter(choices=Framework.choices)
    definition = django_filters.NumberFilter(field_name="definition_id")

    class Meta:
        model = TrainingJob
        fields = ["state", "cluster", "framework", "definition"]


class JobDefinitionFilterSet(django_filters.FilterSet):
    concurrency_policy = django_filters.ChoiceFilter(choices=ConcurrencyPolicy.choices)
    suspended = django_filters.BooleanFilter()

    class Meta:
        model = JobDefinition
        fields = ["concurrency_policy", "suspended"]
