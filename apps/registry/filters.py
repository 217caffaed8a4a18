"""FilterSets of the registry API: a model is filtered by its id (a bounded integer, like every id)."""

from __future__ import annotations

import django_filters

from apps.registry.models import Framework, ModelVersion, VersionStatus


class ModelVersionFilterSet(django_filters.FilterSet):
    model = django_filters.NumberFilter(field_name="model_id")
    status = django_filters.ChoiceFilter(choices=VersionStatus.choices)
    framework = django_filters.ChoiceFilter(choices=Framework.choices)

    class Meta:
        model = ModelVersion
        fields = ["model", "status", "framework"]
