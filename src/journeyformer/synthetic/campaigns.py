"""The campaigns world: the journeys world plus one randomised retention campaign with a holdout
(docs/experiments.md#the-campaigns-world).

On day :func:`exposure_day` every live customer is eligible and is assigned at random
(treatment with probability :data:`TREATED_SHARE`, else the holdout) from the campaign's own
random stream, so the days before the exposure are exactly those of the journeys world with the
same seed. A treated customer responds by type, decided from the latent state that day in this
order: **lost cause** (an old unresolved ticket, or engagement below :data:`LOST_ENGAGEMENT`:
no effect), **sleeping dog** (e-mail averse and not loyal: the contact annoys), **persuadable**
(a streak above :data:`STREAK_MIN` or fading engagement, not loyal) and **sure thing** (no
effect). The multipliers apply from the exposure to the end of the window. A :class:`FollowUp`
is a second round to chosen customers in chosen arms, decided the same way on its day; it
draws nothing, so the world up to its day is the world without it.

The true effects of every eligible customer hold the exposure-day hazard h and session rate
fixed over :data:`WINDOW_DAYS` = W days (the effect given the state at exposure, not of the
realised path):

* ``tau_churn`` = P(churn | treated) - P(churn | control), churn as the labels define it (no
  event in the window): P(h, s) = E[exp(-s min(C, W))] with C ~ Exp(h) the churn time and s
  the rate of sessions and e-mail opens (h x m and sessions x r when treated);
* ``tau_value`` = d (r A(m h) - A(h)), with d the expected spend per live day and
  A(h) = (1 - exp(-h W)) / h the expected live days in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from journeyformer.synthetic import params as P

CAMPAIGN = "retention_offer"
TYPES = ("sure_thing", "lost_cause", "persuadable", "sleeping_dog")
SURE, LOST, PERSUADE, DOG = range(4)
TREATED_SHARE = 0.5
DAYS_BEFORE_END = 60  # the exposure day, counted back from the end of the window
WINDOW_DAYS = 30  # the outcome window the written effects refer to (days)
LOST_ENGAGEMENT = 0.35  # engagement factor below which an offer no longer lands
AVERSE_EMAIL = 0.10  # base e-mail open probability below which contact annoys
STREAK_MIN = 0.5  # streak of views / abandoned carts that makes a customer persuadable
PERSUADE_HAZARD, PERSUADE_SESSIONS = 0.1, 2.5
DOG_HAZARD, DOG_SESSIONS = 4.0, 0.5
HAZARD_MULT = np.array([1.0, 1.0, PERSUADE_HAZARD, DOG_HAZARD])
SESSION_MULT = np.array([1.0, 1.0, PERSUADE_SESSIONS, DOG_SESSIONS])
EMAILS_PER_DAY = P.EMAILS_PER_DAY  # at intensity 1


def exposure_day(days: int) -> int:
    """The day (since the window start) the campaign is sent."""
    return max(1, days - DAYS_BEFORE_END)


@dataclass(frozen=True)
class FollowUp:
    """A second campaign on ``day`` (days since the window start, after the first campaign)
    to the customers of ``treatment`` and ``control`` (customer ids, 1..n_customers): the
    treated get the offer, the controls are the holdout; everyone else is not contacted."""

    day: int
    treatment: tuple[int, ...]
    control: tuple[int, ...]
    name: str = "follow_up"

    def __post_init__(self) -> None:
        both = set(self.treatment) & set(self.control)
        if both:
            raise ValueError(
                f"follow-up: {len(both)} customers in both arms, e.g. {sorted(both)[:5]}"
            )


@dataclass
class Campaign:
    """The campaign's state during the simulation and, after it, the per-customer record.

    ``treat`` / ``hold`` (0-based customer indexes): a chosen assignment (a follow-up); None:
    every live customer is assigned at random with ``treated_share``."""

    day: int
    seed: int
    treated_share: float = TREATED_SHARE  # 1.0 / 0.0: everyone / no one (the counterfactual worlds)
    records: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = CAMPAIGN
    treat: np.ndarray | None = None
    hold: np.ndarray | None = None

    def expose(self, s: dict[str, np.ndarray], ticket_hazard: float) -> None:
        """Assign the live customers of the population view ``s`` and apply the treatment."""
        t = float(self.day)
        idx = np.flatnonzero((s["stage"] != P.CHURNED) & (s["acquired"] < t))
        if self.treat is None or self.hold is None:
            rng = np.random.default_rng([self.seed, 24])
            treated = rng.random(idx.size) < self.treated_share
            contacted = np.ones(idx.size, bool)
        else:  # a chosen assignment; the chosen customers no longer live get nothing
            treated = np.isin(s["cid"][idx], self.treat)
            contacted = treated | np.isin(s["cid"][idx], self.hold)
        engaged = np.exp(np.minimum(s["disengage_at"][idx] - t, 0.0) * P.DISENGAGE_RATE)
        ticket = s["ticket_at"][idx] <= t - P.TICKET_GRACE
        kind = np.full(idx.size, SURE, np.int8)
        fading = engaged < 1.0
        persuadable = (s["streak"][idx] > STREAK_MIN) | fading
        kind[persuadable & (s["stage"][idx] != P.LOY)] = PERSUADE
        kind[(s["email_base"][idx] < AVERSE_EMAIL) & (s["stage"][idx] != P.LOY)] = DOG
        kind[ticket | (engaged < LOST_ENGAGEMENT)] = LOST
        # the daily hazard today, as the simulation computes it (journey effects included)
        x = P.LOG_STREAK_EFFECT * s["streak"][idx] - P.LOG_PURCHASE_EFFECT * s["memory"][idx]
        x -= P.LOG_ENGAGEMENT_EFFECT * P.DISENGAGE_DEPTH * engaged
        h = np.exp(x) * s["hz"][idx] + np.where(ticket, ticket_hazard, 0.0)
        stage, seg = s["stage"][idx], s["segment"][idx]
        buy_online = P.STAGE_CART[stage] * P.SEG_CART[seg] * np.minimum(P.STAGE_BUY[stage] * P.SEG_BUY[seg], 0.95)
        store = P.SEG_PLATFORM[seg, 3]
        p_buy = (1 - store) * buy_online + store * P.STORE_BUY
        spend = np.exp(P.SEG_SPEND_MU[seg] + P.SEG_SPEND_SIGMA[seg] ** 2 / 2) * 1.4  # ~E[items^0.8]
        per_day = s["sess"][idx] * p_buy * spend  # expected spend per live day, currency
        m, r = HAZARD_MULT[kind], SESSION_MULT[kind]
        sessions = s["sess"][idx] * P.DOW.mean()  # sessions per live day
        opens = EMAILS_PER_DAY * s["mail"][idx] * (1.0 - P.DISENGAGE_DEPTH * (1.0 - engaged))
        self.records = {
            "customer": s["cid"][idx].copy(),
            "treated": treated,
            "contacted": contacted,
            "kind": kind,
            "hazard": h.astype(np.float64),
            "hazard_mult": m,
            "session_mult": r,
            "tau_churn": _inactive(m * h, r * sessions + opens) - _inactive(h, sessions + opens),
            "tau_value": per_day * (r * _alive_days(m * h) - _alive_days(h)),
        }
        # the treatment: scale the per-customer bases, then refresh the cached per-stage rates
        moved = idx[treated]
        s["hazard0"][moved] *= m[treated]
        s["rate"][moved] *= r[treated]
        stage_now = s["stage"][moved]
        s["hz"][moved] = s["hazard0"][moved] * P.STAGE_HAZARD[stage_now]
        s["sess"][moved] = np.minimum(s["rate"][moved] * P.STAGE_SESSIONS[stage_now], P.SESSION_CAP)


def _inactive(h: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """P(no event in the window) for churn hazard ``h`` and event rate ``rate`` (per day):
    E[exp(-rate min(C, W))] with C ~ Exp(h)."""
    k = np.maximum(h + rate, 1e-12)
    tail = np.exp(-k * WINDOW_DAYS)
    return h / k * (1.0 - tail) + tail


def _alive_days(h: np.ndarray) -> np.ndarray:
    """Expected live days within the window at a constant hazard ``h`` (churns per day)."""
    h = np.maximum(h, 1e-12)
    return -np.expm1(-h * WINDOW_DAYS) / h

