"""The cluster list page's filters: a name search and the state (labelled "Any state" when empty)."""

from __future__ import annotations

import django_filters

from apps.clusters.models import Cluster, ClusterState


class ClusterFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    state = django_filters.ChoiceFilter(choices=ClusterState.choices, empty_label="Any state")

    class Meta:
        model = Cluster
        fields = ["q", "state"]
