"""The groups claim -> memberships rule of apps/accounts/sso.py, at the service level (the flow itself, against a
real provider, is tests/accounts/test_sso.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.accounts import sso
from apps.accounts.errors import SsoSignInRefused
from apps.accounts.models import Membership, Role, SsoIdentity, Team
from apps.audit.models import AuditEvent
from tests.factories import MembershipFactory

ISSUER = "https://idp.example.com"


def read(groups: Any) -> sso.Grants:
    return sso.read_groups(
        claims={"groups": groups}, claim_name="groups", prefix="paved", platform_admin_group="paved:platform:admin"
    )


def claims(groups: Any, sub: str = "subject-1", **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "preferred_username": "dana", "email": "dana@example.com", "groups": groups, **extra}


def roles_of(user: User) -> dict[str, str]:
    return dict(Membership.objects.filter(user=user).values_list("team__slug", "role"))


def test_groups_map_to_a_role_per_team_and_the_highest_role_wins() -> None:
    grants = read(["paved:vision:member", "paved:vision:manager", "paved:NLP:Admin", "paved:nlp:member"])

    assert grants.roles == {"vision": Role.MANAGER, "nlp": Role.ADMIN}
    assert not grants.platform_admin
    assert grants.ignored == []


def test_the_platform_admin_group_and_other_applications_groups() -> None:
    grants = read(["paved:platform:admin", "jira:users", "vpn"])

    assert grants.platform_admin
    assert grants.roles == {}
    assert grants.ignored == []  # groups without the prefix are not Paved's: skipped, not reported


def test_malformed_paved_groups_are_reported_one_by_one() -> None:
    grants = read(["paved:", "paved:vision", "paved:a:b:c", "paved:Not A Slug:member", "paved:vision:owner", None])

    assert grants.roles == {}
    assert grants.ignored == [
        "'paved:': not paved:<team-slug>:<role>",
        "'paved:vision': not paved:<team-slug>:<role>",
        "'paved:a:b:c': not paved:<team-slug>:<role>",
        "'paved:Not A Slug:member': 'Not A Slug' is not a team slug",
        "'paved:vision:owner': unknown role 'owner' (one of member, manager, admin)",
        "None: not a group name",
    ]


@pytest.mark.parametrize(
    ("claim", "code"),
    [({}, "sso_groups_missing"), ({"groups": "paved:vision:member"}, "sso_groups_malformed")],
)
def test_a_missing_or_non_list_claim_is_refused(claim: dict[str, Any], code: str) -> None:
    with pytest.raises(SsoSignInRefused) as refused:
        sso.read_groups(claims=claim, claim_name="groups", prefix="paved", platform_admin_group="paved:platform:admin")
    assert refused.value.code == code


def test_the_claim_name_and_prefix_are_configurable() -> None:
    grants = sso.read_groups(
        claims={"roles": ["acme-paved:vision:admin", "paved:nlp:member"]},
        claim_name="roles",
        prefix="acme-paved",
        platform_admin_group="acme-paved-admins",
    )
    assert grants.roles == {"vision": Role.ADMIN}


@pytest.mark.django_db
def test_sign_in_makes_memberships_exactly_the_claim_local_ones_included(vision: Any, nlp: Any) -> None:
    user = sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:member"]))
    MembershipFactory(user=user, team=nlp, role=Role.ADMIN)  # added by hand, e.g. in the admin site

    again = sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:manager"]))

    assert again == user
    assert roles_of(user) == {"vision": Role.MANAGER}
    removed = AuditEvent.objects.get(verb="membership.removed")
    assert (removed.team, removed.actor, removed.data) == (nlp, user, {"role": "admin", "source": "sso"})


@pytest.mark.django_db
def test_an_unchanged_claim_writes_no_membership_events(vision: Any) -> None:
    sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:member"]))
    before = AuditEvent.objects.count()

    sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:member"]))

    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_the_same_subject_at_another_issuer_is_another_person(vision: Any) -> None:
    first = sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:member"]))
    second = sso.sign_in(issuer="https://other-idp.example.com", claims=claims([]))

    assert first != second
    assert second.username == "dana-2"
    assert SsoIdentity.objects.count() == 2


@pytest.mark.django_db
def test_profile_changes_at_the_provider_follow_and_are_audited(vision: Any) -> None:
    user = sso.sign_in(issuer=ISSUER, claims=claims([], given_name="Dana", family_name="Scully"))

    sso.sign_in(issuer=ISSUER, claims=claims([], given_name="Dana", family_name="Mulder", email="dm@example.com"))

    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.email) == ("Dana", "Mulder", "dm@example.com")
    assert AuditEvent.objects.get(verb="auth.sso_profile_updated").data == {
        "email": "dm@example.com",
        "last_name": "Mulder",
    }


@pytest.mark.django_db
def test_a_deactivated_user_is_refused_and_nothing_changes(vision: Any, nlp: Any) -> None:
    user = sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:member"]))
    User.objects.filter(pk=user.pk).update(is_active=False)
    before = AuditEvent.objects.count()

    with pytest.raises(SsoSignInRefused) as refused:
        sso.sign_in(issuer=ISSUER, claims=claims(["paved:nlp:admin", "paved:platform:admin"]))

    assert refused.value.code == "sso_user_inactive"
    user.refresh_from_db()
    assert roles_of(user) == {"vision": Role.MEMBER}
    assert not user.is_superuser
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_claims_without_a_subject_are_refused(vision: Any) -> None:
    with pytest.raises(SsoSignInRefused) as refused:
        sso.sign_in(issuer=ISSUER, claims={"groups": ["paved:vision:member"]})
    assert refused.value.code == "sso_subject_missing"
    assert not User.objects.exists()


@pytest.mark.django_db
def test_unknown_teams_are_not_created(vision: Any) -> None:
    user = sso.sign_in(issuer=ISSUER, claims=claims(["paved:vision:member", "paved:ghost:admin"]))

    assert roles_of(user) == {"vision": Role.MEMBER}
    assert not Team.objects.filter(slug="ghost").exists()
    assert AuditEvent.objects.get(verb="auth.sso_groups_ignored").data == {
        "ignored": ["'ghost': no such team in Paved"]
    }
