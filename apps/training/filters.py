"""FilterSet of the training jobs API: a cluster is filtered by its id (a bounded integer, like every id)."""

from __future__ import annotations

import django_filters

from apps.training.models import Framework, JobState, TrainingJob


class TrainingJobFilterSet(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=JobState.choices)
    cluster = django_filters.NumberFilter(field_name="cluster_id")
    framework = django_filters.ChoiceFilter(choices=Framework.choices)

    class Meta:
        model = TrainingJob
        fields = ["state", "cluster", "framework"]
