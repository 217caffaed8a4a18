"""FilterSets of the registry API (a model is filtered by its id, a bounded integer like every id), and the models
page's filters."""

from __future__ import annotations

import django_filters

from apps.accounts.filters import team_choice
from apps.core.lists import FilterForm
from apps.registry.models import Framework, Model, ModelVersion, VersionStatus


class ModelVersionFilterSet(django_filters.FilterSet):
    model = django_filters.NumberFilter(field_name="model_id")
    status = django_filters.ChoiceFilter(choices=VersionStatus.choices)
    framework = django_filters.ChoiceFilter(choices=Framework.choices)

    class Meta:
        model = ModelVersion
        fields = ["model", "status", "framework"]


class ModelPageFilterSet(django_filters.FilterSet):
    """The models page: a name search and the user's teams."""

    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    team = team_choice()

    class Meta:
        model = Model
        form = FilterForm
        fields = ["q", "team"]
