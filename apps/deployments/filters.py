"""FilterSets of the deployments API: an endpoint is filtered by its id (a bounded integer, like every id)."""

from __future__ import annotations

import django_filters

from apps.deployments.models import Deployment, DeploymentState, Experiment, ExperimentState, Strategy


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
