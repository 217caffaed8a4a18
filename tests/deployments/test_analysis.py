"""The analysis, pure: the two-sample tests against scipy's numbers, the one validator of the analysis config, the
judging rules (no data is never a pass), the limits, the burn-rate check, and the sequential A/B test's
false-positive control under continuous monitoring."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from apps.deployments.analysis.burn_rate import burn_rate, burn_rate_check
from apps.deployments.analysis.judge import Phase, judge_measurement, summarize, summarize_step
from apps.deployments.analysis.sequential import means_test, proportions_test
from apps.deployments.analysis.spec import DEFAULT_CHECKS, BaselineTest, Condition, MetricCheck, parse_analysis
from apps.deployments.analysis.stats import mann_whitney_u, two_proportion_z
from apps.deployments.errors import InvalidDeployment
from apps.deployments.metrics.base import MetricName, MetricResult

SLOW = [0.21, 0.25, 0.19, 0.30, 0.28, 0.22, 0.27, 0.31, 0.26, 0.29]
FAST = [0.18, 0.20, 0.17, 0.21, 0.19, 0.22, 0.16, 0.20, 0.21, 0.18]


@pytest.mark.parametrize(
    ("alternative", "expected"),
    # scipy.stats.mannwhitneyu(SLOW, FAST, method="asymptotic", use_continuity=True), scipy 1.x in .venv-serving
    [("two-sided", 0.0016519048), ("greater", 0.0008259524), ("less", 0.9993644014)],
)
def test_mann_whitney_matches_scipy(alternative: Any, expected: float) -> None:
    result = mann_whitney_u(SLOW, FAST, alternative=alternative)
    assert result.statistic == 92.0
    assert result.p_value == pytest.approx(expected, abs=1e-9)


def test_two_proportion_z_matches_the_textbook() -> None:
    result = two_proportion_z(30, 400, 12, 400, alternative="greater")
    assert result.statistic == pytest.approx(2.853371049746439)
    assert result.p_value == pytest.approx(0.0021629040, abs=1e-9)  # scipy.stats.norm.sf(z)
    assert two_proportion_z(0, 0, 1, 10).p_value == 1.0
    assert two_proportion_z(0, 10, 0, 10).p_value == 1.0  # no variance: no evidence


def test_the_empty_config_gives_the_documented_defaults() -> None:
    spec = parse_analysis({})
    assert spec.checks == DEFAULT_CHECKS
    assert [check.name for check in spec.checks] == ["error-rate", "latency-p95"]
    assert (spec.slo_target, spec.burn_rate_factor, spec.burn_rate_long_seconds) == (0.99, 14.4, 3600)
    assert parse_analysis({"checks": []}).checks == ()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"colour": 1}, "analysis.colour"),
        ({"checks": [{"name": "x", "metric": "cpu", "success": {"op": "<", "threshold": 1}}]}, "analysis.checks[0].metric"),
        ({"checks": [{"name": "x", "metric": "error_rate"}]}, "analysis.checks[0]"),
        ({"checks": [{"name": "x", "metric": "error_rate", "percentile": 95, "success": {"op": "<", "threshold": 1}}]},
         "analysis.checks[0].percentile"),
        ({"checks": [{"name": "x", "metric": "latency", "interval_seconds": 0, "success": {"op": "<", "threshold": 1}}]},
         "analysis.checks[0].interval_seconds"),
        ({"checks": [{"name": "x", "metric": "latency", "success": {"op": "!=", "threshold": 1}}]},
         "analysis.checks[0].success.op"),
        ({"checks": [{"name": "x", "metric": "latency", "baseline": {"kind": "two_proportion"}}]},
         "analysis.checks[0].baseline.kind"),
        ({"checks": [{"name": "x", "metric": "error_rate", "baseline": {"kind": "two_proportion", "alpha": 0.7}}]},
         "analysis.checks[0].baseline.alpha"),
        ({"post_promotion": {"slo_target": 1.5}}, "analysis.post_promotion.slo_target"),
    ],
)  # fmt: skip
def test_bad_analysis_configs_name_the_key(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidDeployment) as caught:
        parse_analysis(config)
    assert caught.value.field == field


ERRORS = MetricCheck(
    name="error-rate",
    metric=MetricName.ERROR_RATE,
    success=Condition("<=", 0.05),
    baseline=BaselineTest(kind="two_proportion", alpha=0.05, min_samples=50),
    count=3,
    inconclusive_limit=1,
)


def test_no_data_or_an_error_is_never_a_pass() -> None:
    assert (
        judge_measurement(ERRORS, canary=MetricResult(value=None), baseline=None, error=None).phase
        == Phase.INCONCLUSIVE
    )
    assert judge_measurement(ERRORS, canary=None, baseline=None, error="timeout").phase == Phase.ERROR
    few = judge_measurement(ERRORS, canary=MetricResult(0.0, 10), baseline=MetricResult(0.0, 500), error=None)
    assert few.phase == Phase.INCONCLUSIVE
    assert "under the 50" in few.message


def test_thresholds_and_the_baseline_both_fail_a_bad_canary() -> None:
    over = judge_measurement(ERRORS, canary=MetricResult(0.2, 100), baseline=MetricResult(0.0, 100), error=None)
    assert over.phase == Phase.FAILED
    assert "not <= 0.05" in over.message
    # 4% is under the 5% SLO, but significantly worse than the baseline's 0.5%
    worse = judge_measurement(ERRORS, canary=MetricResult(0.04, 1000), baseline=MetricResult(0.005, 1000), error=None)
    assert worse.phase == Phase.FAILED
    assert "worse than the stable version" in worse.message
    fine = judge_measurement(ERRORS, canary=MetricResult(0.006, 1000), baseline=MetricResult(0.005, 1000), error=None)
    assert fine.phase == Phase.SUCCESSFUL
    assert fine.threshold == "pass <= 0.05; vs baseline p<0.05"


def test_slower_latency_fails_mann_whitney() -> None:
    check = MetricCheck(
        name="latency", metric=MetricName.LATENCY, percentile=95.0, success=Condition("<=", 1.0),
        baseline=BaselineTest(kind="mann_whitney", alpha=0.05, min_samples=10),
    )  # fmt: skip
    slow = MetricResult(value=0.31, count=10, samples=tuple(SLOW))
    fast = MetricResult(value=0.22, count=10, samples=tuple(FAST))
    assert judge_measurement(check, canary=slow, baseline=fast, error=None).phase == Phase.FAILED
    assert judge_measurement(check, canary=fast, baseline=slow, error=None).phase == Phase.SUCCESSFUL


def test_limits_summarize_a_check_and_a_step() -> None:
    ok, bad, unsure = Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE
    assert summarize(ERRORS, [ok]) is None  # 1 of 3 taken
    assert summarize(ERRORS, [ok, ok, ok]) == ok
    assert summarize(ERRORS, [ok, bad]) == bad  # failure_limit 0
    assert summarize(ERRORS, [ok, unsure, ok]) == ok  # one inconclusive is within the limit
    assert summarize(ERRORS, [unsure, Phase.ERROR]) == unsure  # errors count as inconclusive
    assert summarize_step([ok, None]) is None
    assert summarize_step([ok, unsure, None]) == unsure
    assert summarize_step([unsure, bad]) == bad
    assert summarize_step([]) == ok


def test_the_burn_rate_pages_only_when_both_windows_burn() -> None:
    assert burn_rate(2, 100, 0.99) == pytest.approx(2.0)
    assert burn_rate(0, 0, 0.99) is None
    both = burn_rate_check(long=(200, 1000), short=(30, 100), slo_target=0.99)
    assert both.phase == Phase.FAILED  # 20x and 30x
    spent = burn_rate_check(long=(200, 1000), short=(0, 100), slo_target=0.99)
    assert spent.phase == Phase.SUCCESSFUL  # it burned, but it stopped
    assert burn_rate_check(long=(0, 0), short=(0, 0), slo_target=0.99).phase == Phase.INCONCLUSIVE


def _peeks(rng: random.Random, rate_a: float, rate_b: float, looks: int, per_look: int) -> tuple[bool, bool]:
    """One simulated A/B test looked at `looks` times: (mSPRT ever decided, naive z-test ever p < 0.05)."""
    a = b = n = 0
    best = 1.0
    naive = False
    for _ in range(looks):
        a += sum(rng.random() < rate_a for _ in range(per_look))
        b += sum(rng.random() < rate_b for _ in range(per_look))
        n += per_look
        best = min(best, proportions_test(a, n, b, n).p_value)
        naive = naive or two_proportion_z(a, n, b, n).p_value < 0.05
    return best < 0.05, naive


def test_msprt_keeps_false_positives_at_alpha_where_peeking_at_a_z_test_does_not() -> None:
    rng = random.Random(7)  # noqa: S311 - a simulation, not cryptography
    runs = [_peeks(rng, 0.1, 0.1, looks=20, per_look=100) for _ in range(300)]
    msprt_rate = sum(decided for decided, _ in runs) / len(runs)
    naive_rate = sum(naive for _, naive in runs) / len(runs)
    assert msprt_rate <= 0.05 + 0.02
    assert naive_rate > 0.1  # the reason for the method: 20 peeks at a fixed test
    detected = [_peeks(rng, 0.1, 0.2, looks=20, per_look=100)[0] for _ in range(50)]
    assert sum(detected) / len(detected) > 0.9


def test_means_test_finds_a_clear_difference_and_its_direction() -> None:
    result = means_test(10.0, 4.0, 400, 11.0, 4.0, 400)
    assert result.higher == "b"
    assert result.p_value < 0.01
    same = means_test(10.0, 4.0, 400, 10.01, 4.0, 400)
    assert same.higher == ""
    assert math.isclose(same.difference, 0.01, abs_tol=1e-9)
