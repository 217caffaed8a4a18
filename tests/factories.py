"""factory_boy factories for every model. The API scoping test looks factories up by model, so each new
team-owned model registers one in TEAM_SCOPED_FACTORIES."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.utils import timezone

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.services import hash_token
from apps.audit.models import AuditEvent

User = get_user_model()
PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = Role.MEMBER


class ApiTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiToken

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"token{n}")
    prefix = "pvd_test"
    digest = factory.Sequence(lambda n: hash_token(f"pvd_test_secret_{n}"))


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    created_at = factory.LazyFunction(timezone.now)
    team = factory.SubFactory(TeamFactory)
    verb = "test.event"
    actor_label = "someone"


def member(team: Team, role: Role = Role.MEMBER, **user_fields: Any) -> Any:
    """A user who belongs to `team` with `role`."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, team=team, role=role)
    return user


# model -> builder(team, owner) for the tenancy walker in tests/test_api_scoping.py.
# `owner` is a member of `team`, for personal objects such as tokens.
TEAM_SCOPED_FACTORIES: dict[type[Model], Callable[[Team, Any], Model]] = {
    Team: lambda team, owner: team,
    ApiToken: lambda team, owner: ApiTokenFactory(user=owner),
    AuditEvent: lambda team, owner: AuditEventFactory(team=team),
}
