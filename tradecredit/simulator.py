"""Built-in portfolio simulator: a ledger folder in the data contract plus the truth behind it.

Mechanism (every number is in ``configs/simulator.yaml``):

* Each buyer has a latent credit quality ``q`` (higher is safer), month by month:
  ``q = static + firm AR(1) + industry loading * industry AR(1) + macro loading * macro AR(1)``.
  The static part comes from firmographics (age, size, sector, country, legal form) plus an
  unobserved firm effect, so firmographics explain some, never all, of the risk.
* Default is a monthly hazard ``h = exp(a - kappa * q)``; a buyer defaults in a month with
  probability ``1 - exp(-h)``, then stops trading and paying.
* Payments respond to ``q`` through a lateness class per invoice (on time, slightly late,
  severely late), shifted by a buyer's payment habit (unrelated to credit quality: noise a model
  must see through) and by how it ranks each seller. Low quality also brings disputes, partial
  payments and falling order volume. Because ``q`` drifts down before most defaults, payments
  lengthen across sellers months ahead of them.
* The mess real ledgers have, none of it touching a default hazard (each a switch): long
  disputes (a share of disputed invoices paid in full 100-200 days beyond terms), chronic slow
  payers (a share of buyers that pay many invoices 40-120 days late) and small invoices that are
  never paid. Healthy buyers so reach 90 days past due, as they do in real ledgers.
* Optional tables and columns of the contract can be left out of the written ledger.
* Registry events arrive at Poisson rates that rise as ``q`` falls; statements are filed
  yearly with a lag by the firms that file at all.

Truth, written beside the ledger and never inside it:

* ``pd_12m`` per buyer and month start: one minus the survival ``E[exp(-sum of the next 12
  monthly hazards)]``. Future quality given the state at t is Gaussian (AR(1) forecasts), so the
  hazards are lognormal with known means and covariances, and the survival follows from their
  first two cumulants (checked against brute-force Monte Carlo in the tests).
* ``p_late_30d`` per invoice: the probability, as of issue, that the invoice is settled more
  than 30 days after due or not at all: a small invoice left unpaid, a long dispute, a slow
  payer's late invoice or the severe class (each integrated over the dispute draw), plus the
  chance of defaulting before a timely payment (:func:`true_p_late`).
* ``slow_payer`` per buyer (``buyer_traits.parquet``): which buyers are chronic slow payers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from tradecredit.simulator_config import DefaultConfig, PaymentConfig, QualityConfig, SimulatorConfig
from tradecredit.contract import FINANCIAL_FIELDS, TABLES

# Mean days in a month, to turn a monthly hazard into one over an invoice's life.
DAYS_PER_MONTH = 365.25 / 12
# The days-past-due rule the summary holds against the true defaults (the usual 90 days).
NAIVE_DAYS_PAST_DUE = 90


@dataclass(frozen=True)
class SimulatedPortfolio:
    ledger: dict[str, pl.DataFrame]
    buyer_month_truth: pl.DataFrame
    invoice_truth: pl.DataFrame
    buyer_traits: pl.DataFrame
    data_end: date
    summary: dict[str, float | int | str | None]


@dataclass(frozen=True)
class SimulationPaths:
    ledger_dir: Path
    truth_dir: Path


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ar1_paths(rng: np.random.Generator, n: int, months: int, persistence: float, sd: float) -> np.ndarray:
    """n stationary AR(1) paths of length ``months``."""
    out = np.empty((n, months))
    stationary_sd = sd / np.sqrt(1.0 - persistence**2) if sd > 0 else 0.0
    out[:, 0] = rng.normal(0.0, stationary_sd, n) if sd > 0 else 0.0
    for m in range(1, months):
        out[:, m] = persistence * out[:, m - 1] + (rng.normal(0.0, sd, n) if sd > 0 else 0.0)
    return out


def _ar1_filter(innovations: np.ndarray, persistence: float) -> np.ndarray:
    """The AR(1) response to a sequence of innovations, starting from zero."""
    out = np.zeros_like(innovations)
    for m, innovation in enumerate(innovations):
        out[m] = (persistence * out[m - 1] if m else 0.0) + innovation
    return out


def _ar1_forecast_variance(persistence: float, sd: float, steps: np.ndarray) -> np.ndarray:
    """Variance of an AR(1) ``steps`` months ahead given its value now."""
    return sd**2 * (1.0 - persistence ** (2 * steps)) / (1.0 - persistence**2)


def true_pd_12m(
    q_static: np.ndarray,
    firm: np.ndarray,
    industry: np.ndarray,
    macro: np.ndarray,
    qc: QualityConfig,
    dc: DefaultConfig,
) -> np.ndarray:
    """Probability of default in the 12 months from now, given today's latent components.

    Survival is ``E[exp(-X)]`` with ``X`` the sum of the next 12 monthly hazards. Given today's
    state, future quality is Gaussian (independent AR(1) forecasts), so each hazard is lognormal
    with known mean and covariance; ``log E[exp(-X)] = -E[X] + Var[X]/2`` up to the third
    cumulant. Arguments broadcast against each other.
    """
    horizon = np.arange(12)
    components = (
        (1.0, qc.firm_persistence, qc.firm_sd),
        (qc.industry_loading, qc.industry_persistence, qc.industry_sd),
        (qc.macro_loading, qc.macro_persistence, qc.macro_sd),
    )
    # Covariance of q_{t+j} and q_{t+k} given today: phi^|k-j| times the variance at min(j, k).
    lo, gap = np.minimum.outer(horizon, horizon), np.abs(np.subtract.outer(horizon, horizon))
    cov_q = sum(load**2 * phi**gap * _ar1_forecast_variance(phi, sd, lo) for load, phi, sd in components)
    kappa = dc.quality_sensitivity
    expected_hazard = np.stack(
        [
            np.exp(
                dc.log_hazard_intercept
                - kappa
                * (
                    q_static
                    + qc.firm_persistence**k * firm
                    + qc.industry_loading * qc.industry_persistence**k * industry
                    + qc.macro_loading * qc.macro_persistence**k * macro
                )
                + 0.5 * kappa**2 * cov_q[k, k]
            )
            for k in horizon
        ],
        axis=-1,
    )
    mean_x = expected_hazard.sum(axis=-1)
    # Var[X] = sum_jk E[h_j] E[h_k] (exp(kappa^2 cov_jk) - 1).
    var_x = np.einsum("...j,jk,...k->...", expected_hazard, np.expm1(kappa**2 * cov_q), expected_hazard)
    return 1.0 - np.exp(-mean_x + 0.5 * var_x)


@dataclass(frozen=True)
class InvoicePaymentOdds:
    """What the payment draws of one invoice depend on, one array element per invoice."""

    p_dispute: np.ndarray
    p_slip: np.ndarray
    p_severe_clean: np.ndarray
    p_severe_disputed: np.ndarray
    monthly_hazard: np.ndarray  # the buyer's default hazard in the month of issue
    terms: np.ndarray  # days from issue to due
    amount: np.ndarray
    slow_payer: np.ndarray  # the buyer is a chronic slow payer


def true_p_late(odds: InvoicePaymentOdds, pc: PaymentConfig) -> np.ndarray:
    """Probability, as of issue, that an invoice is settled more than ``late_threshold_days``
    after due or is unsettled then.

    The outcomes are disjoint, taken in the simulator's order of precedence: a small invoice
    left unpaid; else a long dispute (disputed, then held); else a slow payer's late invoice;
    else the lateness classes, where the severe class is late and a timely class is late only
    if the buyer defaults before paying. Long disputes, slow payments and the severe class all
    settle after the threshold (the config enforces it), so each is late whether or not the
    buyer defaults. The default term takes the hazard of the month of issue over the mean delay
    of a timely payment.
    """
    unpaid = np.zeros_like(odds.amount)
    if pc.small_invoices_unpaid is not None:
        unpaid = np.where(odds.amount < pc.small_invoices_unpaid.below, pc.small_invoices_unpaid.share, 0.0)
    held_share = pc.long_disputes.share if pc.long_disputes is not None else 0.0
    slow = np.zeros_like(odds.amount)
    if pc.slow_payers is not None:
        slow = np.where(odds.slow_payer, pc.slow_payers.invoice_share, 0.0)

    def by_class(p_severe: np.ndarray) -> np.ndarray:
        p_severe_class = odds.p_slip * p_severe
        p_timely = 1.0 - p_severe_class
        timely_dbt = (1.0 - odds.p_slip) * np.mean(pc.early_days) + odds.p_slip * (1.0 - p_severe) * np.mean(pc.slight_days)
        timely_days = np.maximum(odds.terms + timely_dbt / np.maximum(p_timely, 1e-12), 0.0)
        p_default_first = 1.0 - np.exp(-odds.monthly_hazard * timely_days / DAYS_PER_MONTH)
        return p_severe_class + p_timely * p_default_first

    held = odds.p_dispute * held_share
    # Not held: disputed and let go, or never disputed; then not a slow payer's late invoice.
    classes = odds.p_dispute * (1.0 - held_share) * by_class(odds.p_severe_disputed) + (1.0 - odds.p_dispute) * by_class(
        odds.p_severe_clean
    )
    late_unless_left_unpaid = held + (1.0 - held) * slow + (1.0 - slow) * classes
    return unpaid + (1.0 - unpaid) * late_unless_left_unpaid


def _choice(rng: np.random.Generator, shares: dict, n: int) -> np.ndarray:
    keys = list(shares)
    return rng.choice(len(keys), size=n, p=np.array([shares[k] for k in keys], dtype=float))


def _uniform_int(rng: np.random.Generator, bounds: tuple[int, int], n: int) -> np.ndarray:
    return rng.integers(bounds[0], bounds[1] + 1, size=n)


def _uniform_days(u: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    """Whole days uniform on ``bounds`` (both ends included) from uniform draws ``u``."""
    return bounds[0] + np.floor(u * (bounds[1] - bounds[0] + 1)).astype(int)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def simulate_portfolio(cfg: SimulatorConfig) -> SimulatedPortfolio:
    """Simulate buyers, sellers, invoices, payments, registry events, statements and outcomes."""
    rng = np.random.default_rng(cfg.seed)
    n, months = cfg.buyers, cfg.months
    pop, qc = cfg.population, cfg.quality

    start = np.datetime64(cfg.start, "D")
    month_starts = (np.datetime64(cfg.start, "M") + np.arange(months + 1)).astype("datetime64[D]")
    days_in_month = np.diff(month_starts).astype(int)
    data_end = month_starts[months] - np.timedelta64(1, "D")

    # ------------------------------------------------------------------ buyers
    countries = list(pop.countries)
    industries = list(pop.industries)
    legal_forms = list(pop.legal_forms)
    country_idx = _choice(rng, pop.countries, n)
    industry_idx = _choice(rng, {k: v.share for k, v in pop.industries.items()}, n)
    form_idx = _choice(rng, pop.legal_forms, n)
    sole = np.array(legal_forms)[form_idx] == "sole_proprietor"

    log_emp = np.where(
        sole,
        rng.normal(pop.sole_proprietor_employees_log_mean, pop.sole_proprietor_employees_log_sd, n),
        rng.normal(pop.employees_log_mean, pop.employees_log_sd, n),
    )
    employees = np.maximum(np.floor(np.exp(log_emp)), 0).astype(np.int64)
    log_size = np.log1p(employees)
    age_years = np.exp(rng.normal(pop.age_years_log_mean, pop.age_years_log_sd, n))
    founded_on = start - np.round(age_years * 365.25).astype("timedelta64[D]")
    registered_capital = np.round(
        np.exp(pop.capital_per_employee_log_mean + log_size + rng.normal(0, pop.capital_log_sd, n)), -2
    )
    paid_in_capital = np.round(registered_capital * rng.beta(*pop.paid_in_beta, n), 2)
    onboard_month = np.where(rng.random(n) < pop.initial_share, 0, rng.integers(1, max(months, 2), n))

    industry_quality = np.array([pop.industries[k].quality for k in industries])
    country_quality = np.array([pop.country_quality[k] for k in countries])
    form_quality = np.array([pop.legal_form_quality[k] for k in legal_forms])
    q_static = (
        qc.intercept
        + qc.age_effect * (np.log(age_years) - pop.age_years_log_mean)
        + qc.size_effect * (log_size - log_size.mean())
        + industry_quality[industry_idx]
        + country_quality[country_idx]
        + form_quality[form_idx]
        + rng.normal(0.0, qc.idiosyncratic_sd, n)
    )

    # ------------------------------------------------------------------ latent dynamics
    firm = _ar1_paths(rng, n, months, qc.firm_persistence, qc.firm_sd)
    industry = _ar1_paths(rng, len(industries), months, qc.industry_persistence, qc.industry_sd)
    macro = _ar1_paths(rng, 1, months, qc.macro_persistence, qc.macro_sd)[0]
    if qc.macro_shock is not None:
        # An unforeseen shock: extra innovations that then decay like any other.
        shock = np.zeros(months)
        s0, s1 = qc.macro_shock.start_month, min(qc.macro_shock.start_month + qc.macro_shock.months, months)
        shock[s0:s1] = qc.macro_shock.size / qc.macro_shock.months
        macro = macro + _ar1_filter(shock, qc.macro_persistence)
    quality = (
        q_static[:, None]
        + firm
        + qc.industry_loading * industry[industry_idx]
        + qc.macro_loading * macro[None, :]
    )

    # ------------------------------------------------------------------ defaults
    dc = cfg.default
    hazard = np.exp(dc.log_hazard_intercept - dc.quality_sensitivity * quality)
    trading = np.arange(months)[None, :] >= onboard_month[:, None]
    defaults_now = (rng.random((n, months)) < 1.0 - np.exp(-hazard)) & trading
    has_default = defaults_now.any(axis=1)
    default_month = np.where(has_default, defaults_now.argmax(axis=1), months)
    default_offset = np.floor(rng.random(n) * days_in_month[np.minimum(default_month, months - 1)]).astype(int)
    # A buyer without a default gets a sentinel one day past the data.
    default_on = np.where(
        has_default,
        month_starts[np.minimum(default_month, months - 1)] + default_offset.astype("timedelta64[D]"),
        data_end + np.timedelta64(1, "D"),
    )

    # ------------------------------------------------------------------ truth: 12-month PD
    pd_12m = true_pd_12m(q_static[:, None], firm, industry[industry_idx], macro[None, :], qc, dc)
    # Scored rows: trading, and not yet in default at the month start.
    scored = trading & (default_on[:, None] > month_starts[None, :months])
    bi, mi = np.nonzero(scored)
    buyer_ids = _ids("B", n, 6)
    buyer_month_truth = pl.DataFrame(
        {
            "buyer_id": buyer_ids[bi],
            "as_of_date": month_starts[mi],
            "pd_12m": pd_12m[bi, mi],
            "latent_quality": quality[bi, mi],
        }
    )

    # ------------------------------------------------------------------ sellers and relationships
    sc = cfg.sellers_mix
    seller_ids = _ids("S", cfg.sellers, 3)
    seller_terms = np.array(list(sc.terms_days))[_choice(rng, sc.terms_days, cfg.sellers)]
    popularity = rng.dirichlet(np.full(cfg.sellers, sc.popularity_concentration))
    extra = (rng.random((n, sc.max_per_buyer - 1)) < sc.extra_seller_prob).cumprod(axis=1).sum(axis=1)
    n_sellers = np.minimum(1 + extra, cfg.sellers)
    # Weighted sampling without replacement per buyer: Gumbel top-k over log popularity.
    gumbel_keys = np.log(popularity)[None, :] + rng.gumbel(size=(n, cfg.sellers))
    ranked = np.argsort(-gumbel_keys, axis=1)
    rel_mask = np.arange(cfg.sellers)[None, :] < n_sellers[:, None]
    rel_buyer, rel_rank = np.nonzero(rel_mask)
    rel_seller = ranked[rel_buyer, rel_rank]
    n_rel = rel_buyer.size
    rel_weight = rng.gamma(1.0, 1.0, n_rel)
    rel_weight /= np.bincount(rel_buyer, weights=rel_weight, minlength=n)[rel_buyer]
    rel_habit = rng.normal(0.0, sc.relationship_sd, n_rel)

    # ------------------------------------------------------------------ invoices
    ic, pc = cfg.invoices, cfg.payments
    buyer_rate = np.exp(ic.volume_size_elasticity * (log_size - log_size.mean()))
    buyer_rate *= ic.monthly_invoices_mean / buyer_rate.mean()
    deviation = quality - q_static[:, None]
    rel_rate = (
        buyer_rate[rel_buyer, None] * rel_weight[:, None] * np.exp(ic.volume_quality_elasticity * deviation[rel_buyer])
    )
    active = trading[rel_buyer] & (np.arange(months)[None, :] <= default_month[rel_buyer, None])
    counts = rng.poisson(np.where(active, rel_rate, 0.0))
    ri, mi_inv = np.nonzero(counts)
    reps = counts[ri, mi_inv]
    inv_rel = np.repeat(ri, reps)
    inv_month = np.repeat(mi_inv, reps)
    inv_buyer = rel_buyer[inv_rel]
    issued_on = month_starts[inv_month] + np.floor(rng.random(inv_rel.size) * days_in_month[inv_month]).astype(
        "timedelta64[D]"
    )
    keep = issued_on < default_on[inv_buyer]
    inv_rel, inv_month, inv_buyer, issued_on = inv_rel[keep], inv_month[keep], inv_buyer[keep], issued_on[keep]
    order = np.lexsort((inv_buyer, issued_on))
    inv_rel, inv_month, inv_buyer, issued_on = inv_rel[order], inv_month[order], inv_buyer[order], issued_on[order]
    n_inv = inv_rel.size
    terms = seller_terms[rel_seller[inv_rel]]
    due_on = issued_on + terms.astype("timedelta64[D]")
    amount = np.round(
        np.exp(
            ic.amount_log_mean
            + ic.amount_size_elasticity * (log_size[inv_buyer] - log_size.mean())
            + rng.normal(0.0, ic.amount_log_sd, n_inv)
        ),
        2,
    )

    # ------------------------------------------------------------------ payment behaviour
    # The messes draw from a stream of their own: switched off, the portfolio is the one the
    # same seed gave before they existed.
    mess_rng = np.random.default_rng([cfg.seed, 1])
    slow_payer = mess_rng.random(n) < (pc.slow_payers.share if pc.slow_payers is not None else 0.0)
    q_inv = quality[inv_buyer, inv_month]
    habit = rng.normal(0.0, pc.habit_sd, n)[inv_buyer]
    p_dispute = _sigmoid(pc.dispute_intercept + pc.dispute_quality * q_inv)
    # A liquidity squeeze: below a quality level, firms stretch payables much harder.
    squeeze = pc.squeeze_slope * np.maximum(pc.squeeze_below - q_inv, 0.0)
    p_slip = _sigmoid(pc.slip_intercept + pc.slip_quality * q_inv + squeeze + habit + rel_habit[inv_rel])
    severe_logit = pc.severe_intercept + pc.severe_quality * q_inv + squeeze + pc.severe_habit_weight * habit
    p_severe_clean = _sigmoid(severe_logit)
    p_severe_disputed = _sigmoid(severe_logit + pc.dispute_severe_uplift)
    disputed = rng.random(n_inv) < p_dispute
    p_severe = np.where(disputed, p_severe_disputed, p_severe_clean)
    slip = rng.random(n_inv) < p_slip
    severe = slip & (rng.random(n_inv) < p_severe)
    u = rng.random(n_inv)
    days_beyond_terms = np.where(
        severe,
        pc.severe_days[0] + np.floor(u**2 * (pc.severe_days[1] - pc.severe_days[0] + 1)),
        np.where(
            slip,
            pc.slight_days[0] + np.floor(u * (pc.slight_days[1] - pc.slight_days[0] + 1)),
            pc.early_days[0] + np.floor(u * (pc.early_days[1] - pc.early_days[0] + 1)),
        ),
    ).astype(int)
    # The messes, in order of precedence: a small invoice left unpaid, a long dispute, a slow
    # payer's late invoice; the lateness classes above decide every other invoice.
    mess_u = mess_rng.random((4, n_inv))
    small_unpaid = np.zeros(n_inv, dtype=bool)
    if pc.small_invoices_unpaid is not None:
        small_unpaid = (amount < pc.small_invoices_unpaid.below) & (mess_u[0] < pc.small_invoices_unpaid.share)
    held = np.zeros(n_inv, dtype=bool)
    if pc.long_disputes is not None:
        held = disputed & (mess_u[1] < pc.long_disputes.share)
        days_beyond_terms = np.where(held, _uniform_days(mess_u[3], pc.long_disputes.days), days_beyond_terms)
    slow = np.zeros(n_inv, dtype=bool)
    if pc.slow_payers is not None:
        slow = ~held & slow_payer[inv_buyer] & (mess_u[2] < pc.slow_payers.invoice_share)
        days_beyond_terms = np.where(slow, _uniform_days(mess_u[3], pc.slow_payers.days), days_beyond_terms)
    settle_on = np.maximum(due_on + days_beyond_terms.astype("timedelta64[D]"), issued_on)

    # Truth as of issue, before any dispute: every draw above integrated out.
    odds = InvoicePaymentOdds(
        p_dispute=p_dispute,
        p_slip=p_slip,
        p_severe_clean=p_severe_clean,
        p_severe_disputed=p_severe_disputed,
        monthly_hazard=hazard[inv_buyer, inv_month],
        terms=terms.astype(float),
        amount=amount,
        slow_payer=slow_payer[inv_buyer],
    )
    p_late_30d = true_p_late(odds, pc)

    # Payments: the full amount at settlement, or a partial first instalment before it. A held
    # invoice is paid in full once its dispute is settled.
    partial = (rng.random(n_inv) < _sigmoid(pc.partial_intercept + pc.partial_quality * q_inv)) & ~held
    first_share = rng.uniform(*pc.partial_first_share, n_inv)
    span = (settle_on - issued_on).astype(int)
    first_on = issued_on + np.floor(rng.random(n_inv) * np.maximum(span, 0)).astype("timedelta64[D]")
    defaulted_before = settle_on >= default_on[inv_buyer]
    paid_some_day = ~defaulted_before & ~small_unpaid
    final_paid = paid_some_day & (settle_on <= data_end)
    first_paid = partial & ~small_unpaid & (first_on < default_on[inv_buyer]) & (first_on <= data_end)
    first_amount = np.round(amount * first_share, 2)

    pay_inv = np.concatenate([np.nonzero(first_paid)[0], np.nonzero(final_paid)[0]])
    pay_on = np.concatenate([first_on[first_paid], settle_on[final_paid]])
    pay_amount = np.concatenate(
        [first_amount[first_paid], np.round(amount[final_paid] - np.where(partial, first_amount, 0.0)[final_paid], 2)]
    )
    pay_order = np.lexsort((pay_on, pay_inv))
    invoice_ids = _ids("INV", n_inv, 9)

    first_dispute_day = pc.dispute_after_issue_days
    # A held invoice is disputed by its due date: that is why it is not paid.
    dispute_until = np.where(held, np.minimum(settle_on, due_on), settle_on)
    dispute_span = np.maximum((dispute_until - issued_on).astype(int) - first_dispute_day, 1)
    disputed_on = issued_on + (first_dispute_day + np.floor(rng.random(n_inv) * dispute_span)).astype("timedelta64[D]")
    dispute_known = disputed & (disputed_on <= data_end) & (disputed_on < default_on[inv_buyer])

    # ------------------------------------------------------------------ registry events
    event_types = list(cfg.registry_events)
    log_rates = np.array([cfg.registry_events[e].log_rate for e in event_types])
    quality_coef = np.array([cfg.registry_events[e].quality for e in event_types])
    # Registries know a firm before it trades with our sellers, and until it fails.
    alive = np.arange(months)[None, :] <= default_month[:, None]
    ev_counts = rng.poisson(
        np.exp(log_rates[None, None, :] + quality_coef[None, None, :] * quality[:, :, None]) * alive[:, :, None]
    )
    eb, em, et = np.nonzero(ev_counts)
    ev_reps = ev_counts[eb, em, et]
    eb, em, et = np.repeat(eb, ev_reps), np.repeat(em, ev_reps), np.repeat(et, ev_reps)
    event_on = month_starts[em] + np.floor(rng.random(eb.size) * days_in_month[em]).astype("timedelta64[D]")
    ev_keep = event_on < default_on[eb]
    eb, et, event_on = eb[ev_keep], et[ev_keep], event_on[ev_keep]
    event_type = np.array(event_types)[et]

    # ------------------------------------------------------------------ credit events
    defaulted = np.nonzero(has_default)[0]
    insolvent = rng.random(defaulted.size) < dc.insolvency_share
    ce_buyer = [defaulted]
    ce_on = [default_on[defaulted]]
    ce_type = [np.where(insolvent, "insolvency", "payment_default")]
    for share, lag, name in ((dc.claim_share, dc.claim_lag_days, "claim"), (1.0, dc.write_off_lag_days, "write_off")):
        chosen = defaulted[rng.random(defaulted.size) < share]
        on = default_on[chosen] + _uniform_int(rng, lag, chosen.size).astype("timedelta64[D]")
        within = on <= data_end
        ce_buyer.append(chosen[within])
        ce_on.append(on[within])
        ce_type.append(np.full(within.sum(), name))
    # An insolvency is public through its filing, a few days before the court's decision.
    filers = defaulted[insolvent]
    filing_on = np.maximum(default_on[filers] - _uniform_int(rng, dc.insolvency_filing_lead_days, filers.size).astype("timedelta64[D]"), start)

    registry = pl.DataFrame(
        {
            "buyer_id": np.concatenate([buyer_ids[eb], buyer_ids[filers]]),
            "event_on": np.concatenate([event_on, filing_on]),
            "event_type": np.concatenate([event_type, np.full(filers.size, "insolvency_filing")]),
        }
    ).with_columns(detail=pl.lit("simulated"))
    registry = registry.sort("event_on", "buyer_id", maintain_order=True)

    credit_events = pl.DataFrame(
        {
            "buyer_id": buyer_ids[np.concatenate(ce_buyer)],
            "event_on": np.concatenate(ce_on),
            "event_type": np.concatenate(ce_type),
        }
    ).sort("event_on", "buyer_id", maintain_order=True)

    # ------------------------------------------------------------------ financial statements
    financials = _simulate_financials(
        cfg, rng, quality, employees, sole, industry_idx, industries, founded_on, default_on, data_end, buyer_ids
    )

    # ------------------------------------------------------------------ assemble the ledger
    employees_out = pl.Series("employees", employees, dtype=pl.Int64)
    employees_out = employees_out.scatter(np.nonzero(rng.random(n) < pop.missing_employees_share)[0], None)
    buyers = pl.DataFrame(
        {
            "buyer_id": buyer_ids,
            "country": np.array(countries)[country_idx],
            "industry": np.array(industries)[industry_idx],
            "legal_form": np.array(legal_forms)[form_idx],
            "founded_on": founded_on,
        }
    ).with_columns(
        registered_capital=pl.Series(registered_capital),
        paid_in_capital=pl.Series(paid_in_capital),
        employees=employees_out,
    )
    invoices = pl.DataFrame(
        {
            "invoice_id": invoice_ids,
            "buyer_id": buyer_ids[inv_buyer],
            "seller_id": seller_ids[rel_seller[inv_rel]],
            "issued_on": issued_on,
            "due_on": due_on,
            "amount": amount,
        }
    ).with_columns(
        disputed_on=pl.Series(np.where(dispute_known, disputed_on, np.datetime64("NaT"))).cast(pl.Date),
    )
    payments = pl.DataFrame(
        {
            "invoice_id": invoice_ids[pay_inv[pay_order]],
            "paid_on": pay_on[pay_order],
            "amount": pay_amount[pay_order],
        }
    )
    ledger = {
        "buyers": buyers,
        "invoices": invoices,
        "payments": payments,
        "registry_events": registry,
        "financials": financials,
        "credit_events": credit_events,
    }
    if "payments" in cfg.omit.tables:
        # An invoice-only export: the date each invoice was settled in full, nothing for one paid in part.
        ledger["invoices"] = invoices.with_columns(
            paid_on=pl.Series(np.where(final_paid, settle_on, np.datetime64("NaT"))).cast(pl.Date)
        )
    ledger = {
        name: frame.drop([c for c in cfg.omit.columns if c in frame.columns])
        for name, frame in ledger.items()
        if name not in cfg.omit.tables
    }
    invoice_truth = pl.DataFrame({"invoice_id": invoice_ids, "p_late_30d": p_late_30d})
    buyer_traits = pl.DataFrame({"buyer_id": buyer_ids, "slow_payer": slow_payer})

    exposure_years = float(scored.sum()) / 12.0
    late_labelled = (due_on + np.timedelta64(pc.late_threshold_days, "D")) <= data_end
    # Late: settled after the threshold, or never (left unpaid, or the buyer defaulted first).
    late_observed = ~paid_some_day | (settle_on > due_on + np.timedelta64(pc.late_threshold_days, "D"))
    past_due = _days_past_due_figures(
        inv_buyer, due_on, settle_on, paid_some_day, default_on, has_default, bi, month_starts[mi], data_end
    )
    summary: dict[str, float | int | str | None] = {
        "buyers": n,
        "sellers": cfg.sellers,
        "months": months,
        "start": str(cfg.start),
        "data_end": str(data_end),
        "invoices": n_inv,
        # Rows written: 0 for a table left out (then invoices carry paid_on for payments).
        **{key: ledger[name].height if name in ledger else 0 for key, name in _TABLE_COUNTS.items()},
        "omitted_tables": ", ".join(cfg.omit.tables),
        "omitted_columns": ", ".join(cfg.omit.columns),
        "defaults": int(has_default.sum()),
        "annual_default_rate": float(has_default.sum()) / exposure_years if exposure_years else 0.0,
        "mean_true_pd_12m": float(buyer_month_truth["pd_12m"].mean() or 0.0),
        **past_due,
        "late_30d_share": float(late_observed[late_labelled].mean()) if late_labelled.any() else 0.0,
        "mean_true_p_late_30d": float(p_late_30d[late_labelled].mean()) if late_labelled.any() else 0.0,
        "slow_payers": int(slow_payer.sum()),
        "slow_payers_defaulted": int((slow_payer & has_default).sum()),
        "slow_payer_late_invoices": int(slow.sum()),
        "long_disputes": int(held.sum()),
        "small_invoices_unpaid": int(small_unpaid.sum()),
    }
    return SimulatedPortfolio(
        ledger=ledger,
        buyer_month_truth=buyer_month_truth,
        invoice_truth=invoice_truth,
        buyer_traits=buyer_traits,
        data_end=date.fromisoformat(str(data_end)),
        summary=summary,
    )


# Summary key -> ledger table whose written rows it counts.
_TABLE_COUNTS = {
    "payments": "payments",
    "registry_events": "registry_events",
    "financial_statements": "financials",
    "credit_events": "credit_events",
}


def _days_past_due_figures(
    inv_buyer: np.ndarray,
    due_on: np.ndarray,
    settle_on: np.ndarray,
    paid_some_day: np.ndarray,
    default_on: np.ndarray,
    has_default: np.ndarray,
    row_buyer: np.ndarray,
    row_as_of: np.ndarray,
    data_end: np.datetime64,
) -> dict[str, float | None]:
    """What a naive days-past-due rule makes of the portfolio, against the true defaults.

    ``row_buyer, row_as_of``: the scored buyer-months (trading, not yet in default). The true
    rate is the share of those with a 12-month window inside the data whose buyer defaults in
    it. The naive rule (the first invoice unpaid 90 days after due, or a credit event, for good:
    no materiality, disputes counted, no cure) labels the same rows less those it already
    counts as in default. A rate is None where no buyer-month has a
    year ahead inside the data.
    """
    overdue_on = due_on + np.timedelta64(NAIVE_DAYS_PAST_DUE, "D")
    unpaid_then = (overdue_on <= data_end) & (~paid_some_day | (settle_on > overdue_on))
    never = (data_end + np.timedelta64(1, "D")).astype("datetime64[D]").astype(np.int64)
    first_overdue = np.full(default_on.size, never, dtype=np.int64)
    np.minimum.at(first_overdue, inv_buyer[unpaid_then], overdue_on[unpaid_then].astype("datetime64[D]").astype(np.int64))
    traded = np.bincount(inv_buyer, minlength=default_on.size) > 0
    healthy = traded & ~has_default

    true_on = default_on.astype("datetime64[D]").astype(np.int64)
    naive_on = np.minimum(first_overdue, true_on)
    as_of = row_as_of.astype("datetime64[D]").astype(np.int64)
    horizon = as_of + 365
    labelled = horizon <= int(data_end.astype("datetime64[D]").astype(np.int64))
    naive_rows = labelled & (naive_on[row_buyer] > as_of)
    return {
        "true_default_12m_rate": float((true_on[row_buyer] <= horizon)[labelled].mean()) if labelled.any() else None,
        "naive_dpd90_default_12m_rate": (
            float((naive_on[row_buyer] <= horizon)[naive_rows].mean()) if naive_rows.any() else None
        ),
        "nondefaulting_buyers_90dpd_share": float((first_overdue[healthy] < never).mean()) if healthy.any() else 0.0,
    }


def _simulate_financials(
    cfg: SimulatorConfig,
    rng: np.random.Generator,
    quality: np.ndarray,
    employees: np.ndarray,
    sole: np.ndarray,
    industry_idx: np.ndarray,
    industries: list[str],
    founded_on: np.ndarray,
    default_on: np.ndarray,
    data_end: np.datetime64,
    buyer_ids: np.ndarray,
) -> pl.DataFrame:
    """Yearly statements (period ending 31 December) from the firms that file, published with a lag."""
    fc, r = cfg.financials, cfg.financials.ratios
    n, months = quality.shape
    files = rng.random(n) < _sigmoid(
        fc.filing_intercept + fc.filing_size * np.log1p(employees) - fc.sole_proprietor_filing_penalty * sole
    )
    first_year, last_year = cfg.start.year - 1, int(str(data_end)[:4])
    years = np.arange(first_year, last_year + 1)
    fb, fy = np.nonzero(files[:, None] & np.ones((1, years.size), dtype=bool))
    period_end = np.array([f"{y}-12-31" for y in years[fy]], dtype="datetime64[D]")
    published_on = period_end + _uniform_int(rng, fc.publication_lag_days, fb.size).astype("timedelta64[D]")
    keep = (published_on <= data_end) & (published_on < default_on[fb]) & (founded_on[fb] < period_end)
    fb, fy, period_end, published_on = fb[keep], fy[keep], period_end[keep], published_on[keep]
    # Quality in the period's last simulated month (the first month for the year before the start).
    month_of_period = np.clip((years[fy] - cfg.start.year) * 12 + 11, 0, months - 1)
    q = quality[fb, month_of_period]
    k = fb.size

    def noise(scale: float = 1.0) -> np.ndarray:
        return rng.normal(0.0, fc.noise_sd * scale, k)

    revenue_per_employee = np.array([cfg.population.industries[i].revenue_per_employee for i in industries])
    revenue = np.maximum(employees[fb], 1) * revenue_per_employee[industry_idx[fb]] * np.exp(r.revenue_quality * q + noise())
    total_assets = revenue * np.exp(r.log_assets_to_revenue + noise())
    debt_ratio = _sigmoid(r.debt_ratio_intercept + r.debt_ratio_quality * q + noise())
    total_liabilities = total_assets * debt_ratio
    current_assets = total_assets * rng.uniform(*r.current_assets_share, k)
    current_liabilities = current_assets / np.exp(r.log_current_ratio_intercept + r.log_current_ratio_quality * q + noise())
    cash = current_assets * _sigmoid(r.cash_share_intercept + r.cash_share_quality * q + noise())
    receivables = current_assets * rng.uniform(*r.receivables_share, k)
    net_income = revenue * (r.net_margin_intercept + r.net_margin_quality * q + noise(r.net_margin_noise_scale))
    values = {
        "revenue": revenue,
        "total_assets": total_assets,
        "total_liabilities": total_liabilities,
        "current_assets": current_assets,
        "current_liabilities": current_liabilities,
        "cash": cash,
        "receivables": receivables,
        "inventory": np.maximum(current_assets - cash - receivables, 0.0),
        "equity": total_assets - total_liabilities,
        "net_income": net_income,
        "operating_cash_flow": net_income + revenue * rng.uniform(*r.cash_conversion_margin, k),
        "interest_expense": total_liabilities * rng.uniform(*r.interest_rate, k),
    }
    frame = pl.DataFrame({"buyer_id": buyer_ids[fb], "period_end": period_end, "published_on": published_on})
    columns = []
    for name in FINANCIAL_FIELDS:
        # Filed accounts are often incomplete: each field is missing now and then.
        missing = rng.random(k) < fc.field_missing_share
        columns.append(pl.Series(name, np.round(values[name], 0)).scatter(np.nonzero(missing)[0], None))
    return frame.with_columns(columns).sort("published_on", "buyer_id")


def write_portfolio(portfolio: SimulatedPortfolio, out_dir: Path, output_format: str) -> SimulationPaths:
    """Write the ledger folder to ``out_dir/ledger`` and the truth beside it in ``out_dir/truth``."""
    ledger_dir, truth_dir = out_dir / "ledger", out_dir / "truth"
    ledger_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        # A table left out must not be left behind by an earlier run into the same folder.
        for stale in ledger_dir.glob(f"{name}.*"):
            stale.unlink()
    for name, frame in portfolio.ledger.items():
        path = ledger_dir / f"{name}.{output_format}"
        if output_format == "csv":
            frame.write_csv(path, date_format="%Y-%m-%d")
        else:
            frame.write_parquet(path)
    portfolio.buyer_month_truth.write_parquet(truth_dir / "buyer_month_pd.parquet")
    portfolio.invoice_truth.write_parquet(truth_dir / "invoice_late.parquet")
    portfolio.buyer_traits.write_parquet(truth_dir / "buyer_traits.parquet")
    (truth_dir / "summary.json").write_text(json.dumps(portfolio.summary, indent=2) + "\n", encoding="utf-8")
    return SimulationPaths(ledger_dir=ledger_dir, truth_dir=truth_dir)
