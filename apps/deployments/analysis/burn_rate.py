"""The SLO error-budget burn rate after promotion, from the Google SRE workbook ("Alerting on SLOs"): the rate of
errors divided by the rate the SLO allows. A page-worthy burn is above 14.4x (2% of a 30-day budget gone in an
hour) over BOTH a long window (1 h) and a short one (5 min): the long one proves it is significant, the short one
that it is still happening."""

from __future__ import annotations

from apps.deployments.analysis.judge import Judgement, Phase


def burn_rate(errors: int, requests: int, slo_target: float) -> float | None:
    """Errors per request over the error budget (1 - SLO); None with no requests."""
    if requests <= 0:
        return None
    return (errors / requests) / (1.0 - slo_target)


def burn_rate_check(
    *, long: tuple[int, int], short: tuple[int, int], slo_target: float, factor: float = 14.4
) -> Judgement:
    """`long` and `short` are (errors, requests) over each window."""
    long_rate, short_rate = burn_rate(*long, slo_target), burn_rate(*short, slo_target)
    threshold = f"> {factor:g}x over both windows"
    if long_rate is None or short_rate is None:
        return Judgement(Phase.INCONCLUSIVE, None, threshold, "no requests to judge the burn rate on")
    message = f"burn rate {long_rate:.1f}x (long window), {short_rate:.1f}x (short window) of the {slo_target:.2%} SLO"
    if long_rate > factor and short_rate > factor:
        return Judgement(Phase.FAILED, long_rate, threshold, f"{message}: above {factor:g}x")
    return Judgement(Phase.SUCCESSFUL, long_rate, threshold, message)
