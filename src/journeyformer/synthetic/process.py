"""The day-by-day simulation behind :mod:`journeyformer.synthetic.journeys`.

Time is measured in days (float64) since the start of the window. The loop runs over days; every
step is vectorised over the customers alive that day, and over that day's sessions and events, so
no Python loop ever runs over customers or events. Stage-dependent rates are cached per customer
and are zero for customers who are not live (churned, or acquired today), so the daily work is a
few passes over flat arrays.

One day for every live customer:

1. stage changes that happened overnight (acquisition -> consideration at a latent time,
   loyalty -> retention when the decayed purchase score falls below a threshold);
2. churn: the day's hazard is added to a cumulative hazard, and the customer churns when it
   passes an Exp(1) budget drawn at acquisition (so the churn time is continuous within the day);
3. at most one session (web, app, social or store) with a funnel of events
   entry -> product views -> add_to_cart -> purchase -> support_ticket;
4. marketing e-mails, observed only when opened (probability = the latent e-mail engagement);
5. resolutions of open support tickets;
6. events after the churn time (or past midnight) are dropped and the state is updated from what
   remains, so every event of day t lies in [t, t + 1) and before the customer's churn.

The churn hazard depends on the journey: an unresolved support ticket, fading e-mail engagement
and a streak of views and abandoned carts raise it; a recent purchase lowers it. Activity does not
fade before churn: a churner is as active as ever until the moment it leaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from journeyformer.synthetic import params as P

if TYPE_CHECKING:
    from journeyformer.synthetic.campaigns import Campaign
    from journeyformer.synthetic.config import SyntheticConfig

F32 = np.float32  # latent rates and scores: half the memory traffic of float64


@dataclass
class RawJourneys:
    """Simulation output as arrays; customers are indexed 0..n-1 and times are days since start."""

    event_customer: np.ndarray  # int64 customer index
    event_time: np.ndarray  # float64 days
    event_action: np.ndarray  # uint8 index into P.ACTIONS
    event_channel: np.ndarray  # uint8 index into P.CHANNELS
    event_device: np.ndarray  # uint8 index into P.DEVICES
    event_amount: np.ndarray  # float64 currency, 0 unless purchase
    event_items: np.ndarray  # float64 item count, 0 unless add_to_cart / purchase
    segment: np.ndarray  # uint8 index into P.SEGMENTS, per customer
    acquired: np.ndarray  # float64 days, per customer
    churned: np.ndarray  # float64 days, per customer; inf = not churned within the window
    stage_customer: np.ndarray  # int64 customer index, one row per stage entry
    stage_code: np.ndarray  # uint8 index into P.LATENT_STAGES
    stage_time: np.ndarray  # float64 days


@dataclass
class _Buffers:
    """The daily chunks of events and stage entries, concatenated once at the end."""

    events: dict[str, list[np.ndarray]] = field(default_factory=dict)
    stages: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add_events(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.events.setdefault(name, []).append(values)

    def add_stage(self, customers: np.ndarray, stage: int | np.ndarray, times: np.ndarray) -> None:
        if customers.size:
            code = np.broadcast_to(np.asarray(stage, dtype=np.uint8), customers.shape)
            self.stages.append((customers, code, np.broadcast_to(times, customers.shape)))


@dataclass(frozen=True)
class _Context:
    days: int  # window length (days)
    ticket_hazard: float  # extra churns per day while a ticket is unresolved
    email_rate: float  # e-mails received per live customer and day


def _categorical(cum_probs: np.ndarray, row: np.ndarray | int, u: np.ndarray) -> np.ndarray:
    """Draw from row ``row`` of a (R, K) table of cumulative probabilities, for each ``u`` (n,).

    Row r is shifted to (r, r + 1] so one sorted search over the flattened table serves all rows.
    """
    n_rows, k = cum_probs.shape
    flat = (cum_probs + np.arange(n_rows)[:, None]).ravel()  # increasing across rows
    row = np.asarray(row, dtype=np.int64)
    hit = np.searchsorted(flat, u + row, side="right") - row * k
    return np.clip(hit, 0, k - 1).astype(np.uint8)


def _hour_fraction(rng: np.random.Generator, profile: np.ndarray, n: int) -> np.ndarray:
    """Time of day in days (0..1) from an hourly weight profile (24,), uniform within each hour."""
    cdf = np.concatenate([[0.0], np.cumsum(profile) / profile.sum()])  # (25,)
    return np.interp(rng.random(n), cdf, np.arange(25) / 24.0)  # inverse CDF


class _Population:
    """Per-customer state in acquisition order; the customers acquired so far are ``[lo, hi)``.

    Every 16 days churned customers are moved in front of the slice and ``lo`` passes them, which
    keeps the daily work proportional to the number of live customers.
    """

    def __init__(self, rng: np.random.Generator, config: SyntheticConfig) -> None:
        n, days = config.n_customers, config.days
        span, intensity, churn_scale = config.acquisition_span, config.intensity, config.churn_scale
        day = rng.integers(0, max(1, int(span * days)), n)
        acquired = np.sort(day + _hour_fraction(rng, P.HOURS_ONLINE, n))  # days since start
        self.acquired_sorted = acquired
        segment = rng.choice(len(P.SEGMENTS), size=n, p=P.SEG_SHARE).astype(np.uint8)
        # heterogeneous activity that does not change the hazard: quiet customers are not churners
        activity = rng.gamma(P.ACTIVITY_SHAPE, 1.0 / P.ACTIVITY_SHAPE, n)
        # exp(ENGAGEMENT * DEPTH) moves into the base so the daily term is -ENGAGEMENT*DEPTH*y
        base = P.BASE_HAZARD * churn_scale * np.exp(P.LOG_ENGAGEMENT_EFFECT * P.DISENGAGE_DEPTH)
        self.s: dict[str, np.ndarray] = {
            "cid": np.arange(n, dtype=np.int64),
            "segment": segment,
            "acquired": acquired,
            "rate": P.SEG_SESSIONS[segment] * activity * intensity,  # sessions per day multiplier
            # active customers see more tickets and carts; this keeps activity itself neutral
            "hazard0": base * P.SEG_HAZARD[segment] * activity**-P.ACTIVITY_HAZARD_POWER,
            "email_base": F32(
                np.clip(
                    P.SEG_EMAIL[segment] * rng.beta(4, 2, n) * 1.5 * np.sqrt(activity), 0.01, 0.95
                )
            ),
            "disengage_at": F32(acquired + rng.exponential(P.DISENGAGE_DAYS, n)),
            "consider_at": acquired + rng.exponential(P.CONSIDER_DAYS, n),  # inf once past P.ACQ
            "budget": F32(rng.exponential(1.0, n)),  # Exp(1) hazard budget, inf once churned
            "stage": np.full(n, P.ACQ, dtype=np.uint8),
            # cached per stage; zero while not live (acquired today, or churned)
            "hz": np.zeros(n, F32),  # churns per day before journey effects
            "sess": np.zeros(n, F32),  # session probability per day before the weekday effect
            "mail": np.zeros(n, F32),  # e-mail open probability when fully engaged
            "loyal_floor": np.full(n, -np.inf, F32),  # loyalty ends below it; -inf unless P.LOY
            "cum_hazard": np.zeros(n, F32),
            "score": np.zeros(n, F32),  # decayed purchase count, e-folding P.SCORE_DECAY_DAYS
            "memory": np.zeros(n, F32),  # 1 right after a purchase, e-folding P.PURCHASE_MEMORY
            "streak": np.zeros(n, F32),  # views and abandoned carts since the last purchase
            "n_buy": np.zeros(n, dtype=np.int32),
            "ticket_at": np.full(n, np.inf),  # time of the open ticket, inf = none
            "resolve_at": np.full(n, np.inf),
            "churn_at": np.full(n, np.inf),
        }
        self.lo = 0
        self.hi = 0

    def view(self) -> dict[str, np.ndarray]:
        return {k: v[self.lo : self.hi] for k, v in self.s.items()}

    def compact(self) -> None:
        """Move churned customers in front of the slice and advance ``lo`` past them."""
        order = np.argsort(self.s["stage"][self.lo : self.hi] != P.CHURNED, kind="stable")
        for values in self.s.values():
            values[self.lo : self.hi] = values[self.lo : self.hi][order]
        self.lo += int((self.s["stage"][self.lo : self.hi] == P.CHURNED).sum())


def _set_stage(s: dict[str, np.ndarray], idx: np.ndarray, code: int | np.ndarray) -> None:
    """Put customers ``idx`` into stage(s) ``code`` and refresh the per-stage cached rates."""
    code = np.broadcast_to(np.asarray(code, dtype=np.uint8), idx.shape)
    s["stage"][idx] = code
    s["hz"][idx] = s["hazard0"][idx] * P.STAGE_HAZARD[code]
    s["sess"][idx] = np.minimum(s["rate"][idx] * P.STAGE_SESSIONS[code], P.SESSION_CAP)
    s["consider_at"][idx[code != P.ACQ]] = np.inf
    s["loyal_floor"][idx] = np.where(code == P.LOY, P.LOYAL_EXIT, -np.inf)
    gone = idx[code == P.CHURNED]
    s["mail"][gone] = 0.0
    for name in ("budget", "ticket_at", "resolve_at"):
        s[name][gone] = np.inf


def simulate(
    config: SyntheticConfig, campaign: Campaign | None = None, *more: Campaign
) -> RawJourneys:
    """Simulate ``config.n_customers`` customers over ``config.days`` days (see the module doc).

    A ``campaign`` (:mod:`journeyformer.synthetic.campaigns`) is sent to the live customers at
    the start of its day and changes the treated customers' rates from then on; ``more``
    campaigns (follow-ups) likewise on their days.
    """
    _, pop, out = run_days(config, config.days, [c for c in (campaign, *more) if c is not None])
    return _collect(pop, out)


def context(config: SyntheticConfig) -> _Context:
    """The world's constants that every day's step reads."""
    hazard = config.ticket_hazard * config.churn_scale
    return _Context(config.days, hazard, min(P.EMAILS_PER_DAY * config.intensity, 0.95))


def run_days(
    config: SyntheticConfig, stop: int, campaigns: Sequence[Campaign] = ()
) -> tuple[np.random.Generator, _Population, _Buffers]:
    """:func:`simulate`'s day loop over days ``0 .. stop - 1``: the generator, population and
    buffers as they stand after day ``stop - 1`` (the same draws as a whole run up to then;
    ``benchmarks/bench_ceiling.py`` forks the world there)."""
    rng = np.random.default_rng(config.seed)
    pop = _Population(rng, config)
    start_weekday = config.start_datetime.weekday()
    ctx = context(config)
    ticket_hazard = ctx.ticket_hazard
    out = _Buffers()
    for t in range(stop):
        if t % 16 == 15:
            pop.compact()
        prev_hi = pop.hi
        pop.hi = int(np.searchsorted(pop.acquired_sorted, t + 1.0))
        s = pop.view()
        new = np.arange(prev_hi - pop.lo, pop.hi - pop.lo)
        for c in campaigns:
            if t == c.day:
                c.expose(s, ticket_hazard)
        out.add_stage(s["cid"][new], P.ACQ, s["acquired"][new])
        _step(rng, s, new, float(t), (start_weekday + t) % 7, ctx, out)
    return rng, pop, out


def _step(rng: np.random.Generator, s: dict[str, np.ndarray], new: np.ndarray, t: float,
          dow: int, ctx: _Context, out: _Buffers) -> None:  # fmt: skip
    """Advance the customers ``s`` (views into the population) over the day ``[t, t + 1)``.

    ``new`` are the positions of the customers acquired today (the tail of the slice).
    """
    n = s["cid"].size
    cid = s["cid"]
    day_end = min(t + 1.0, float(ctx.days))  # events past midnight are cut off

    # 1. overnight: decays and the stage changes they cause
    s["score"] *= math.exp(-1.0 / P.SCORE_DECAY_DAYS)
    s["memory"] *= math.exp(-1.0 / P.PURCHASE_MEMORY)
    s["streak"] *= math.exp(-1.0 / P.STREAK_MEMORY)
    m = np.flatnonzero(s["consider_at"] < t)
    out.add_stage(cid[m], P.CONS, s["consider_at"][m])
    _set_stage(s, m, P.CONS)
    m = np.flatnonzero(s["score"] < s["loyal_floor"])
    out.add_stage(cid[m], P.RET, np.full(m.size, t))
    _set_stage(s, m, P.RET)

    # 2. the day's churn hazard, which depends on the journey so far
    engaged = np.minimum(s["disengage_at"] - F32(t), F32(0.0))
    engaged = np.exp(engaged * F32(P.DISENGAGE_RATE), out=engaged)  # 1, falling to 0 when fading
    x = P.LOG_STREAK_EFFECT * s["streak"]
    x -= P.LOG_PURCHASE_EFFECT * s["memory"]
    x -= (P.LOG_ENGAGEMENT_EFFECT * P.DISENGAGE_DEPTH) * engaged
    h = np.exp(x, out=x)
    h *= s["hz"]
    h[s["ticket_at"] <= t - P.TICKET_GRACE] += ctx.ticket_hazard  # unresolved for > grace days
    s["cum_hazard"] += h
    churners = np.flatnonzero(s["cum_hazard"] >= s["budget"])
    overshoot = s["cum_hazard"][churners] - s["budget"][churners]
    s["churn_at"][churners] = t + 1.0 - overshoot / h[churners]  # continuous time within the day

    # 3. sessions: at most one a day; new customers have theirs at the moment of acquisition
    has = rng.random(n, dtype=F32) < s["sess"] * F32(P.DOW[dow])
    has[new] = True
    si = np.flatnonzero(has)
    if si.size:
        _sessions(rng, s, si, si >= n - new.size, t, day_end, out)

    # 4. e-mails: candidates by thinning, observed only when opened (P = engagement)
    oi = rng.integers(0, n, rng.binomial(n, ctx.email_rate)) if n else np.zeros(0, np.int64)
    p_open = s["mail"][oi] * (1.0 - P.DISENGAGE_DEPTH * (1.0 - engaged[oi]))
    oi = oi[rng.random(oi.size) < p_open]
    if oi.size:
        open_t = t + _hour_fraction(rng, P.HOURS_EMAIL, oi.size)
        click = rng.random(oi.size) < P.STAGE_CLICK[s["stage"][oi]]
        click_t = open_t[click] + (20.0 + rng.exponential(180.0, int(click.sum()))) * P.SECOND
        device = _categorical(P.CUM_DEVICE, P.EMAIL, rng.random(oi.size))
        action = np.repeat(np.array([P.OPEN, P.CLICK], np.uint8), [oi.size, click.sum()])
        who, when = np.concatenate([oi, oi[click]]), np.concatenate([open_t, click_t])
        _emit(out, s, who, when, action, P.EMAIL, np.concatenate([device, device[click]]), day_end)

    # 5. support-ticket resolutions that fall due today
    ri = np.flatnonzero(s["resolve_at"] < t + 1.0)
    if ri.size:
        device = _categorical(P.CUM_DEVICE, P.SUPPORT, rng.random(ri.size))
        _emit(out, s, ri, s["resolve_at"][ri], P.RESOLVED, P.SUPPORT, device, day_end)
        s["ticket_at"][ri] = np.inf
        s["resolve_at"][ri] = np.inf

    # 6. churn is absorbing; today's new customers join the daily processes tomorrow
    out.add_stage(cid[churners], P.CHURNED, s["churn_at"][churners])
    _set_stage(s, churners, P.CHURNED)
    _set_stage(s, new, s["stage"][new])
    s["mail"][new] = s["email_base"][new]


def _sessions(rng: np.random.Generator, s: dict[str, np.ndarray], si: np.ndarray,
              is_new: np.ndarray, t: float, day_end: float, out: _Buffers) -> None:  # fmt: skip
    """One session for each customer in ``si``: entry -> views -> cart -> purchase -> ticket."""
    ns = si.size
    st, sg = s["stage"][si], s["segment"][si]
    plat = _categorical(P.CUM_PLATFORM, sg, rng.random(ns))
    plat[is_new & (plat == P.IN_STORE)] = P.ON_WEB  # the first touch is online
    online = plat != P.IN_STORE
    views = rng.poisson(P.STAGE_VIEWS[st] * np.where(plat == P.ON_SOCIAL, 0.5, 1.0)) * online
    cart = online & (rng.random(ns) < P.STAGE_CART[st] * P.SEG_CART[sg])
    u = rng.random(ns)
    buy = np.where(
        online, cart & (u < np.minimum(P.STAGE_BUY[st] * P.SEG_BUY[sg], 0.95)), u < P.STORE_BUY
    )
    ticket = rng.random(ns) < P.STAGE_TICKET[st]
    start = t + _hour_fraction(rng, P.HOURS_ONLINE, ns)
    store = np.flatnonzero(~online)
    start[store] = t + _hour_fraction(rng, P.HOURS_STORE, store.size)
    start[is_new] = s["acquired"][si[is_new]]
    device = _categorical(P.CUM_DEVICE, P.ENTRY_CHANNEL[plat], rng.random(ns))
    n_cart, n_store = int(cart.sum()), store.size
    items_cart = 1.0 + rng.poisson(0.6, n_cart)  # items put in the cart (and bought online)
    items = np.zeros(ns)
    items[cart] = items_cart
    items[store] = 1.0 + rng.poisson(1.2, n_store)
    pb = np.flatnonzero(buy)
    spend = np.exp(
        P.SEG_SPEND_MU[sg[pb]] + P.SEG_SPEND_SIGMA[sg[pb]] * rng.standard_normal(pb.size)
    )
    amount = np.maximum(np.round(spend * items[pb] ** 0.8, 2), 0.01)  # currency, per purchase

    # expand into events in funnel order: entry, views, add_to_cart, purchase, support_ticket
    counts = np.column_stack([online, views, cart, buy, ticket]).astype(np.int64)  # (ns, 5)
    n_ev = counts.sum(axis=1)
    total = int(n_ev.sum())
    if total == 0:
        return
    first = np.cumsum(n_ev) - n_ev
    last = np.minimum(first + n_ev - 1, total - 1)  # the purchase is last but for a ticket
    at_cart, at_buy = last - ticket - buy, last - ticket
    action = np.empty((ns, 5), np.uint8)  # one column per funnel step
    action[:, 0] = P.ENTRY_ACTION[plat]
    action[:, 1:] = (P.PRODUCT, P.CART, P.BUY, P.TICKET)
    channel = np.empty((ns, 5), np.uint8)
    channel[:, 0] = P.ENTRY_CHANNEL[plat]
    channel[:, 1:4] = P.CONTENT_CHANNEL[plat][:, None]
    channel[:, 4] = P.SUPPORT
    ev = {
        k: np.repeat(v.ravel(), counts.ravel())
        for k, v in (("action", action), ("channel", channel))
    }
    ev["amount"], ev["items"] = np.zeros(total), np.zeros(total)
    ev["amount"][at_buy[pb]] = amount
    ev["items"][at_cart[cart]] = items_cart
    ev["items"][at_buy[pb]] = items[pb]
    gaps = (5.0 + 90.0 * rng.standard_exponential(total, F32)) * F32(P.SECOND)  # 5 s + Exp(90 s)
    gaps[first[n_ev > 0]] = 0.0
    cum = np.cumsum(gaps, dtype=np.float64)
    times = np.repeat(start - np.where(n_ev > 0, cum[first.clip(max=total - 1)], 0.0), n_ev) + cum
    cut = np.minimum(s["churn_at"][si], day_end)
    whole = bool((times[last] < cut)[n_ev > 0].all())  # no session runs past churn or midnight
    _emit(out, s, np.repeat(si, n_ev), times, ev["action"], ev["channel"],
          np.repeat(device, n_ev), day_end, ev["amount"], ev["items"], check=not whole)  # fmt: skip

    # state updates from what was observed before churn
    buy_t = np.where(buy, times[np.maximum(at_buy, 0)], np.inf)
    ticket_t = np.where(ticket, times[last], np.inf)
    s["streak"][si] = np.minimum(
        s["streak"][si] + P.VIEW_STREAK * views + (cart & ~buy), P.STREAK_CAP
    )
    ok = buy & (buy_t < cut)
    b, bt = si[ok], buy_t[ok]
    s["streak"][b] = 0.0
    s["memory"][b] = 1.0
    s["score"][b] += 1.0
    s["n_buy"][b] += 1
    prev = s["stage"][b]
    to = np.select(
        [prev <= P.CONS, (prev == P.FIRST) & (s["n_buy"][b] >= 2),
         (prev == P.RET) & (s["score"][b] >= P.LOYAL_ENTER)],
        [P.FIRST, P.RET, P.LOY], default=prev.astype(np.int64),
    ).astype(np.uint8)  # fmt: skip
    moved = to != prev
    out.add_stage(s["cid"][b[moved]], to[moved], bt[moved])
    _set_stage(s, b[moved], to[moved])
    ok = ticket & (ticket_t < cut) & np.isinf(s["ticket_at"][si])
    k, kt = si[ok], ticket_t[ok]
    quick = rng.random(k.size) < P.RESOLVE_SHARE
    delay = np.where(quick, rng.exponential(1.5, k.size), 20.0 + rng.exponential(40.0, k.size))
    s["ticket_at"][k] = kt
    s["resolve_at"][k] = kt + delay  # days


def _emit(out: _Buffers, s: dict[str, np.ndarray], idx: np.ndarray, times: np.ndarray,
          action: np.ndarray | int, channel: np.ndarray | int, device: np.ndarray, day_end: float,
          amount: np.ndarray | None = None, items: np.ndarray | None = None,
          check: bool = True) -> None:  # fmt: skip
    """Record the events of customers ``idx`` that happen before their churn and ``day_end``.

    ``check=False`` skips the filter when the caller knows every event passes it.
    """
    n = idx.size
    columns = {
        "customer": s["cid"][idx],
        "time": times,
        "action": np.broadcast_to(np.asarray(action, np.uint8), n),
        "channel": np.broadcast_to(np.asarray(channel, np.uint8), n),
        "device": device,
        "amount": np.zeros(n) if amount is None else amount,
        "items": np.zeros(n) if items is None else items,
    }
    if check:
        keep = times < np.minimum(s["churn_at"][idx], day_end)
        if not keep.all():
            columns = {k: v[keep] for k, v in columns.items()}
    out.add_events(**columns)


def _collect(pop: _Population, out: _Buffers) -> RawJourneys:
    """Concatenate the daily chunks and put per-customer arrays back in customer-index order."""

    def by_customer(values: np.ndarray) -> np.ndarray:
        result = np.empty_like(values)
        result[pop.s["cid"]] = values
        return result

    dtypes = {"customer": np.int64, "time": np.float64, "action": np.uint8, "channel": np.uint8,
              "device": np.uint8, "amount": np.float64, "items": np.float64}  # fmt: skip
    ev = {k: np.concatenate(out.events.get(k, [np.zeros(0, d)])) for k, d in dtypes.items()}
    stages = out.stages or [(np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0))]
    stage_customer, stage_code, stage_time = (np.concatenate(parts) for parts in zip(*stages, strict=True))
    return RawJourneys(
        **{f"event_{k}": v for k, v in ev.items()},
        segment=by_customer(pop.s["segment"]),
        acquired=by_customer(pop.s["acquired"]),
        churned=by_customer(pop.s["churn_at"]),
        stage_customer=stage_customer, stage_code=stage_code, stage_time=stage_time,
    )
