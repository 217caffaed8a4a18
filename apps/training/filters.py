"""FilterSets of the training jobs and definitions API (a cluster or definition is filtered by its id, a bounded
integer like every id), and the pages' sets on top of them: the same parameters, plus a search and the user's teams,
every empty choice labelled ("Any state"), never `---------`."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from apps.accounts.filters import team_choice
from apps.core.lists import FilterForm, yes_no_filter
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


class TrainingJobPageFilterSet(TrainingJobFilterSet):
    """The jobs page: a search over what the table shows of a job (owner, image, definition) and the user's
    teams; a cluster or definition (linked from their pages) stays a hidden id."""

    q = django_filters.CharFilter(method="search", label="Owner, image or definition")
    team = team_choice()
    state = django_filters.ChoiceFilter(choices=JobState.choices, empty_label="Any state")
    framework = django_filters.ChoiceFilter(choices=Framework.choices, empty_label="Any framework")
    cluster = django_filters.NumberFilter(field_name="cluster_id", widget=forms.HiddenInput)
    definition = django_filters.NumberFilter(field_name="definition_id", widget=forms.HiddenInput)

    class Meta:
        model = TrainingJob
        form = FilterForm
        fields = ["q", "team", "state", "framework", "cluster", "definition"]

    def search(self, queryset: QuerySet[TrainingJob], name: str, value: str) -> QuerySet[TrainingJob]:
        return queryset.filter(
            Q(owner__username__icontains=value) | Q(image__icontains=value) | Q(definition__name__icontains=value)
        )


class JobDefinitionPageFilterSet(JobDefinitionFilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    team = team_choice()
    concurrency_policy = django_filters.ChoiceFilter(
        choices=ConcurrencyPolicy.choices, empty_label="Any policy", label="Policy"
    )
    suspended = yes_no_filter(
        field_name="suspended", label="Schedule", any_label="Suspended or not", yes="Suspended", no="Not suspended"
    )

    class Meta:
        model = JobDefinition
        form = FilterForm
        fields = ["q", "team", "concurrency_policy", "suspended"]
