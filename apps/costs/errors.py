"""Errors of the costs app, each with a stable `code` (clients switch on it)."""

from __future__ import annotations

from apps.core.errors import Conflict, PermissionDenied, ValidationFailed

# --- Budgets ---------------------------------------------------------------------------------------------------


class BudgetDenied(PermissionDenied):
    code = "budget_denied"


class InvalidBudget(ValidationFailed):
    code = "invalid_budget"


class BudgetScopeTaken(Conflict):
    """A team has one budget per scope (team-wide, one template, one user)."""

    code = "budget_scope_taken"


class BudgetExceeded(Conflict):
    """A launch whose cost is more than what is left of a blocking budget (or, for a GPU cluster, of one that
    requires an approval: clusters have no approval flow)."""

    code = "budget_exceeded"
