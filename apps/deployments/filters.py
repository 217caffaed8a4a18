"""FilterSets of the deployments API (an endpoint is filtered by its id, a bounded integer like every id), and the
deployments page's endpoint filters (a name search, the user's teams, labelled empty choices)."""

from __future__ import annotations

import django_filters

from apps.accounts.filters import team_choice
from apps.core.lists import FilterForm
from apps.deployments.models import (
    Deployment,
    DeploymentState,
    Endpoint,
    Environment,
    Experiment,
    ExperimentState,
    Strategy,
    TargetKind,
)


class DeploymentFilterSet(django_filters.FilterSet):
    endpoint = django_filters.NumberFilter(field_name="endpoint_id")
    state = django_filters.ChoiceFilter(choices=DeploymentState.choices)
    strategy = django_filters.ChoiceFilter(choices=Strategy.choices)

    class Meta:
        model = Deployment
        fields = ["endpoint", "state", "strategy"]


class ExperimentFilterSet(django_filters.FilterSet):
    endpoint = django_filters.NumberFilter(field_name="endpoint_id")
    state = django_filters.ChoiceFilter(choices=ExperimentState.choices)

    class Meta:
        model = Experiment
        fields = ["endpoint", "state"]


class EndpointPageFilterSet(django_filters.FilterSet):
    """The deployments page's endpoints (and, through them, its recent rollouts)."""

    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    team = team_choice()
    environment = django_filters.ChoiceFilter(choices=Environment.choices, empty_label="Any environment")
    target = django_filters.ChoiceFilter(choices=TargetKind.choices, empty_label="Any target")

    class Meta:
        model = Endpoint
        form = FilterForm
        fields = ["q", "team", "environment", "target"]
