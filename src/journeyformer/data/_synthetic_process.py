"""The day-by-day simulation behind :mod:`journeyformer.data.synthetic`.

Time is measured in days (float64) since the start of the window. The loop runs over days; every
step is vectorised over the customers alive that day, and over that day's sessions and events, so
no Python loop ever runs over customers or events.

One day for every live customer:

1. stage changes that happened overnight (acquisition -> consideration at a latent time,
   loyalty -> retention when the decayed purchase score falls below a threshold);
2. churn: the day's hazard is added to a cumulative hazard, and the customer churns when it
   passes an Exp(1) budget drawn at acquisition (so the churn time is continuous within the day);
3. at most one session (web, app, social or store) with a funnel of events
   entry -> product views -> add_to_cart -> purchase -> support_ticket;
4. marketing e-mails, observed only when opened (probability = the latent e-mail engagement);
5. resolutions of open support tickets;
6. events after the churn time are dropped and the state is updated from what remains.

The churn hazard depends on the journey: an unresolved support ticket, fading e-mail engagement
and a streak of views and abandoned carts raise it; a recent purchase lowers it. Activity does not
fade before churn: a churner is as active as ever until the moment it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIONS: tuple[str, ...] = (
    "page_view", "product_view", "add_to_cart", "purchase", "email_open",
    "email_click", "app_open", "social_engage", "support_ticket", "ticket_resolved",
)  # fmt: skip
CHANNELS: tuple[str, ...] = ("web", "app", "email", "store", "social", "support")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet", "in_store")
LATENT_STAGES: tuple[str, ...] = (
    "acquisition", "consideration", "first_purchase", "retention", "loyalty", "churned",
)  # fmt: skip
SEGMENTS: tuple[str, ...] = (
    "deal_seekers", "app_loyalists", "store_shoppers", "email_responsive", "browsers",
)  # fmt: skip

PV, PRODUCT, CART, BUY, OPEN, CLICK, APP_OPEN, SOCIAL_ENGAGE, TICKET, RESOLVED = range(10)
WEB, APP, EMAIL, STORE, SOCIAL, SUPPORT = range(6)
ACQ, CONS, FIRST, RET, LOY, CHURNED = range(6)

# --- segments: deal_seekers, app_loyalists, store_shoppers, email_responsive, browsers -----------
SEG_SHARE = np.array([0.22, 0.20, 0.18, 0.20, 0.20])
# session platform probabilities, columns: web, app, social, store
SEG_PLATFORM = np.array(
    [[0.55, 0.20, 0.20, 0.05],
     [0.15, 0.75, 0.07, 0.03],
     [0.30, 0.10, 0.05, 0.55],
     [0.65, 0.20, 0.10, 0.05],
     [0.50, 0.30, 0.15, 0.05]]
)  # fmt: skip
SEG_SESSIONS = np.array([1.0, 1.3, 0.6, 0.8, 1.4])  # session-rate multiplier
SEG_CART = np.array([1.2, 1.0, 1.0, 1.0, 1.3])  # add_to_cart multiplier
SEG_BUY = np.array([1.0, 1.1, 1.0, 1.05, 0.45])  # purchase-given-cart multiplier
SEG_EMAIL = np.array([0.35, 0.15, 0.25, 0.70, 0.30])  # e-mail open probability when engaged
SEG_SPEND_MU = np.array([3.0, 3.6, 4.1, 3.7, 3.4])  # log-currency per item (log-normal mu)
SEG_SPEND_SIGMA = np.array([0.45, 0.60, 0.55, 0.60, 0.70])
SEG_HAZARD = np.array([1.3, 0.8, 0.7, 1.0, 1.2])  # churn-hazard multiplier

# --- stages: acquisition, consideration, first_purchase, retention, loyalty, churned ------------
STAGE_SESSIONS = np.array([0.14, 0.16, 0.12, 0.12, 0.32, 0.0])  # sessions per day
STAGE_VIEWS = np.array([0.4, 1.8, 1.2, 1.2, 1.5, 0.0])  # mean product views per session
STAGE_CART = np.array([0.04, 0.30, 0.25, 0.30, 0.45, 0.0])  # P(add_to_cart | session)
STAGE_BUY = np.array([0.25, 0.30, 0.45, 0.50, 0.65, 0.0])  # P(purchase | cart)
STAGE_TICKET = np.array([0.003, 0.005, 0.04, 0.03, 0.025, 0.0])  # P(support_ticket | session)
STAGE_CLICK = np.array([0.10, 0.35, 0.20, 0.20, 0.25, 0.0])  # P(email_click | email_open)
STAGE_HAZARD = np.array([1.6, 1.2, 0.8, 0.6, 0.25, 0.0])  # churn-hazard multiplier

BASE_HAZARD = 0.0032  # churns per day before multipliers
EMAILS_PER_DAY = 0.25  # campaign e-mails received per live customer and day
STORE_BUY = 0.75  # P(purchase | store visit); a visit without purchase leaves no event
CONSIDER_DAYS = 20.0  # mean latent time from acquisition to consideration (days)
DISENGAGE_DAYS = 400.0  # mean time from acquisition to the start of e-mail disengagement (days)
DISENGAGE_RATE = 0.08  # per day: how fast engagement falls once disengagement starts
DISENGAGE_DEPTH = 0.9  # engagement falls to (1 - depth) of its base
SCORE_DECAY_DAYS = 60.0  # e-folding time of the purchase score (days)
LOYAL_ENTER, LOYAL_EXIT = 2.5, 1.0  # purchase-score thresholds with hysteresis
RESOLVE_SHARE = 0.55  # tickets resolved quickly (mean 1.5 days); the rest take 20 + Exp(40) days
TICKET_GRACE = 2.0  # days before an open ticket starts to raise the hazard
LOG_ENGAGEMENT_EFFECT = 1.4  # log-hazard at full disengagement
LOG_STREAK_EFFECT, STREAK_CAP = 0.3, 6.0  # per unit of streak (abandoned cart = 1, view = 0.25)
LOG_PURCHASE_EFFECT, PURCHASE_MEMORY = 1.2, 14.0  # log-hazard reduction right after a purchase
DOW = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.2])  # Monday..Sunday session multiplier

# platform -> entry action, channel of the entry event, channel of views/cart/purchase
ENTRY_ACTION = np.array([PV, APP_OPEN, SOCIAL_ENGAGE, BUY], dtype=np.uint8)
ENTRY_CHANNEL = np.array([WEB, APP, SOCIAL, STORE], dtype=np.uint8)
CONTENT_CHANNEL = np.array([WEB, APP, WEB, STORE], dtype=np.uint8)
SLOT_ACTION = np.array([PV, PRODUCT, CART, BUY, TICKET], dtype=np.uint8)
# channel -> device probabilities, columns: desktop, mobile, tablet, in_store
CHANNEL_DEVICE = np.array(
    [[0.55, 0.35, 0.10, 0.0],
     [0.00, 0.85, 0.15, 0.0],
     [0.35, 0.58, 0.07, 0.0],
     [0.00, 0.00, 0.00, 1.0],
     [0.10, 0.85, 0.05, 0.0],
     [0.50, 0.45, 0.05, 0.0]]
)  # fmt: skip
HOURS_ONLINE = np.array(
    [1, .6, .4, .3, .3, .5, 1, 2, 3, 3.5, 3.5, 3.8, 4.2, 4, 3.8, 3.6, 3.8, 4.2, 5, 6, 6.5, 6, 4.5, 2.5]
)  # fmt: skip
HOURS_STORE = np.array([0.0] * 9 + [2, 4, 5, 6, 6, 5, 5, 6, 7, 7, 5, 3] + [0.0] * 3)
HOURS_EMAIL = np.array([.3] * 6 + [2, 5, 6, 5, 4, 3, 3, 2.5, 2, 2, 2, 2.5, 3, 3, 2.5, 2, 1, .5])

SECOND = 1.0 / 86_400.0  # one second in days


@dataclass
class RawJourneys:
    """Simulation output as arrays; customers are indexed 0..n-1 and times are days since start."""

    event_customer: np.ndarray  # int64 customer index
    event_time: np.ndarray  # float64 days
    event_action: np.ndarray  # uint8 index into ACTIONS
    event_channel: np.ndarray  # uint8 index into CHANNELS
    event_device: np.ndarray  # uint8 index into DEVICES
    event_amount: np.ndarray  # float64 currency, 0 unless purchase
    event_items: np.ndarray  # float64 item count, 0 unless add_to_cart / purchase
    segment: np.ndarray  # uint8 index into SEGMENTS, per customer
    acquired: np.ndarray  # float64 days, per customer
    churned: np.ndarray  # float64 days, per customer; inf = not churned within the window
    stage_customer: np.ndarray  # int64 customer index, one row per stage entry
    stage_code: np.ndarray  # uint8 index into LATENT_STAGES
    stage_time: np.ndarray  # float64 days


@dataclass
class _Buffers:
    events: dict[str, list[np.ndarray]] = field(default_factory=dict)
    stages: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add_events(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.events.setdefault(name, []).append(values)

    def add_stage(self, customers: np.ndarray, stage: int, times: np.ndarray) -> None:
        if customers.size:
            code = np.full(customers.size, stage, dtype=np.uint8)
            self.stages.append((customers, code, np.asarray(times, dtype=np.float64)))


def _categorical(cum_probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: ``cum_probs`` (n, K) cumulative probabilities, ``u`` (n,)."""
    return (u[:, None] >= cum_probs[:, :-1]).sum(axis=1).astype(np.uint8)


def _hour_fraction(rng: np.random.Generator, profile: np.ndarray, n: int) -> np.ndarray:
    """Time of day in days (0..1) drawn from an hourly weight profile (24,)."""
    cum = np.cumsum(profile) / profile.sum()
    hour = np.searchsorted(cum, rng.random(n), side="right").clip(0, 23)
    return (hour + rng.random(n)) / 24.0


class _Population:
    """Per-customer state, in acquisition order; live customers are the slice ``[lo, hi)``.

    Every few days the slice is compacted so that churned customers leave it, which keeps the
    daily work proportional to the number of live customers.
    """

    def __init__(self, rng: np.random.Generator, n: int, days: int, span: float, intensity: float,
                 churn_scale: float) -> None:  # fmt: skip
        acquired = np.sort(rng.integers(0, max(1, int(span * days)), n).astype(np.float64))
        acquired += _hour_fraction(rng, HOURS_ONLINE, n)
        self.acquired_sorted = acquired
        segment = rng.choice(len(SEGMENTS), size=n, p=SEG_SHARE).astype(np.uint8)
        activity = rng.gamma(1.5, 1.0 / 1.5, n)  # heterogeneous, hazard-neutral activity
        self.s: dict[str, np.ndarray] = {
            "cid": np.arange(n, dtype=np.int64),
            "segment": segment,
            "acquired": acquired,
            "rate": SEG_SESSIONS[segment] * activity * intensity,
            "log_hazard": np.log(BASE_HAZARD * SEG_HAZARD[segment] * churn_scale),
            "email_base": np.clip(SEG_EMAIL[segment] * rng.beta(4, 2, n) * 1.5, 0.02, 0.95),
            "consider_at": acquired + rng.exponential(CONSIDER_DAYS, n),
            "disengage_at": acquired + rng.exponential(DISENGAGE_DAYS, n),
            "budget": rng.exponential(1.0, n),  # Exp(1) cumulative-hazard budget
            "cum_hazard": np.zeros(n),
            "stage": np.full(n, ACQ, dtype=np.uint8),
            "alive": np.ones(n, dtype=bool),
            "score": np.zeros(n),  # decayed purchase count
            "n_buy": np.zeros(n, dtype=np.int32),
            "last_buy": np.full(n, -np.inf),
            "streak": np.zeros(n),  # views and abandoned carts since the last purchase
            "ticket_at": np.full(n, np.inf),  # open ticket time, inf = none
            "resolve_at": np.full(n, np.inf),
            "churn_at": np.full(n, np.inf),
        }
        self.lo = 0
        self.hi = 0

    def view(self) -> dict[str, np.ndarray]:
        return {k: v[self.lo : self.hi] for k, v in self.s.items()}

    def compact(self) -> None:
        """Move churned customers in front of the live slice and advance ``lo`` past them."""
        order = np.argsort(self.s["alive"][self.lo : self.hi], kind="stable")
        for values in self.s.values():
            values[self.lo : self.hi] = values[self.lo : self.hi][order]
        self.lo += int((~self.s["alive"][self.lo : self.hi]).sum())


@dataclass(frozen=True)
class _Context:
    days: int  # window length (days)
    log_ticket: float  # log-hazard of an unresolved ticket
    email_rate: float  # e-mails received per live customer and day


def simulate(n: int, days: int, start_weekday: int, seed: int, *, intensity: float,
             churn_scale: float, acquisition_span: float, ticket_hazard: float) -> RawJourneys:  # fmt: skip
    """Simulate ``n`` customers over ``days`` days (see the module docstring).

    ``start_weekday`` is the weekday of day 0 (Monday = 0); ``intensity`` scales session and e-mail
    rates, ``churn_scale`` the churn hazard, ``ticket_hazard`` is the hazard multiplier of an
    unresolved ticket, ``acquisition_span`` the share of the window over which customers arrive.
    """
    rng = np.random.default_rng(seed)
    pop = _Population(rng, n, days, acquisition_span, intensity, churn_scale)
    ctx = _Context(days, float(np.log(ticket_hazard)), min(EMAILS_PER_DAY * intensity, 0.95))
    out = _Buffers()
    for t in range(days):
        if t % 16 == 15:
            pop.compact()
        prev_hi = pop.hi
        pop.hi = int(np.searchsorted(pop.acquired_sorted, t + 1.0))
        s = pop.view()
        new = np.arange(prev_hi - pop.lo, pop.hi - pop.lo)
        out.add_stage(s["cid"][new], ACQ, s["acquired"][new])
        _step(rng, s, new, float(t), (start_weekday + t) % 7, ctx, out)
    return _collect(pop, out)


def _step(rng: np.random.Generator, s: dict[str, np.ndarray], new: np.ndarray, t: float, dow: int,
          ctx: _Context, out: _Buffers) -> None:  # fmt: skip
    """Advance the live customers ``s`` (views into the population) over the day ``[t, t + 1)``."""
    n = s["cid"].size
    stage, cid = s["stage"], s["cid"]
    old = s["alive"] & (s["acquired"] < t)  # acquired before today; today's new ones start fresh

    # 1. overnight stage changes
    s["score"] *= np.exp(-1.0 / SCORE_DECAY_DAYS)
    m = np.flatnonzero(old & (stage == ACQ) & (s["consider_at"] < t))
    stage[m] = CONS
    out.add_stage(cid[m], CONS, s["consider_at"][m])
    m = np.flatnonzero(old & (stage == LOY) & (s["score"] < LOYAL_EXIT))
    stage[m] = RET
    out.add_stage(cid[m], RET, np.full(m.size, t))

    # 2. churn hazard of the day, which depends on the journey so far
    gap = DISENGAGE_DEPTH * -np.expm1(-DISENGAGE_RATE * np.maximum(t - s["disengage_at"], 0.0))
    log_h = (
        s["log_hazard"]
        + np.log(STAGE_HAZARD + 1e-300)[stage]
        + ctx.log_ticket * (s["ticket_at"] <= t - TICKET_GRACE)
        + LOG_ENGAGEMENT_EFFECT * gap
        + LOG_STREAK_EFFECT * np.minimum(s["streak"], STREAK_CAP)
        - LOG_PURCHASE_EFFECT * np.exp((s["last_buy"] - t) / PURCHASE_MEMORY)
    )
    h = np.where(old, np.exp(log_h), 0.0)
    before = s["cum_hazard"].copy()
    s["cum_hazard"] += h
    churners = np.flatnonzero(s["cum_hazard"] >= s["budget"])
    s["churn_at"][churners] = t + (s["budget"] - before)[churners] / h[churners]
    end = np.minimum(s["churn_at"], float(ctx.days))  # nothing is observed after churn or the window

    # 3. sessions: at most one a day; new customers have theirs at the moment of acquisition
    p = np.minimum(s["rate"] * STAGE_SESSIONS[stage] * DOW[dow], 0.9)
    has = old & (rng.random(n) < p)
    has[new] = True
    si = np.flatnonzero(has)
    if si.size:
        _sessions(rng, s, si, si >= n - new.size, t, end, out)

    # 4. e-mails: received daily with some probability, observed only when opened
    engagement = s["email_base"] * (1.0 - gap)
    oi = np.flatnonzero(old & (rng.random(n) < ctx.email_rate * engagement))
    if oi.size:
        open_t = t + _hour_fraction(rng, HOURS_EMAIL, oi.size)
        click = rng.random(oi.size) < STAGE_CLICK[stage[oi]]
        click_t = open_t[click] + (20.0 + rng.exponential(180.0, int(click.sum()))) * SECOND
        device = _categorical(np.cumsum(CHANNEL_DEVICE[[EMAIL] * oi.size], 1), rng.random(oi.size))
        action = np.repeat(np.array([OPEN, CLICK], np.uint8), [oi.size, click.sum()])
        _emit(out, s, np.concatenate([oi, oi[click]]), np.concatenate([open_t, click_t]), action,
              EMAIL, np.concatenate([device, device[click]]), end)  # fmt: skip

    # 5. support-ticket resolutions that fall due today
    ri = np.flatnonzero(s["alive"] & (s["resolve_at"] < t + 1.0))
    if ri.size:
        device = _categorical(np.cumsum(CHANNEL_DEVICE[[SUPPORT] * ri.size], 1), rng.random(ri.size))
        _emit(out, s, ri, s["resolve_at"][ri], RESOLVED, SUPPORT, device, end)
        s["ticket_at"][ri] = np.inf
        s["resolve_at"][ri] = np.inf

    # 6. churn is absorbing
    s["alive"][churners] = False
    stage[churners] = CHURNED
    out.add_stage(cid[churners], CHURNED, s["churn_at"][churners])


def _sessions(rng: np.random.Generator, s: dict[str, np.ndarray], si: np.ndarray,
              is_new: np.ndarray, t: float, end: np.ndarray, out: _Buffers) -> None:  # fmt: skip
    """One session for each customer in ``si``: entry -> views -> cart -> purchase -> ticket."""
    ns = si.size
    st, sg = s["stage"][si], s["segment"][si]
    plat = _categorical(np.cumsum(SEG_PLATFORM, 1)[sg], rng.random(ns))  # web, app, social, store
    plat[is_new & (plat == 3)] = 0  # the first touch is online
    online = plat != 3
    views = rng.poisson(STAGE_VIEWS[st] * np.where(plat == 2, 0.5, 1.0)) * online
    cart = online & (rng.random(ns) < STAGE_CART[st] * SEG_CART[sg])
    u = rng.random(ns)
    buy = np.where(online, cart & (u < np.minimum(STAGE_BUY[st] * SEG_BUY[sg], 0.95)), u < STORE_BUY)
    ticket = rng.random(ns) < STAGE_TICKET[st]
    start = t + np.where(online, _hour_fraction(rng, HOURS_ONLINE, ns),
                         _hour_fraction(rng, HOURS_STORE, ns))  # fmt: skip
    start[is_new] = s["acquired"][si[is_new]]
    device = _categorical(np.cumsum(CHANNEL_DEVICE, 1)[ENTRY_CHANNEL[plat]], rng.random(ns))
    items_cart = 1.0 + rng.poisson(0.6, ns)
    items_buy = np.where(online, items_cart, 1.0 + rng.poisson(1.2, ns))
    spend = np.exp(SEG_SPEND_MU[sg] + SEG_SPEND_SIGMA[sg] * rng.standard_normal(ns))
    amount = np.maximum(np.round(spend * items_buy**0.8, 2), 0.01)  # currency units

    # expand sessions into events: slot 0 entry, 1 product_view, 2 add_to_cart, 3 purchase, 4 ticket
    b1 = online.astype(np.int64)
    b2 = b1 + views
    b3 = b2 + cart
    b4 = b3 + buy
    n_ev = b4 + ticket
    total = int(n_ev.sum())
    if total == 0:
        return
    first = np.cumsum(n_ev) - n_ev
    rep = np.repeat(np.arange(ns), n_ev)
    pos = np.arange(total) - first[rep]
    slot = (pos >= b1[rep]).astype(np.uint8) + (pos >= b2[rep]) + (pos >= b3[rep]) + (pos >= b4[rep])
    gaps = (5.0 + rng.exponential(90.0, total)) * SECOND  # seconds between events of a session
    gaps[pos == 0] = 0.0
    cum = np.cumsum(gaps)
    times = start[rep] + cum - cum[first[rep]]
    sp = plat[rep]
    action = np.where(slot == 0, ENTRY_ACTION[sp], SLOT_ACTION[slot])
    channel = np.where(slot == 0, ENTRY_CHANNEL[sp], np.where(slot == 4, SUPPORT, CONTENT_CHANNEL[sp]))
    _emit(out, s, si[rep], times, action, channel, device[rep], end,
          amount=np.where(slot == 3, amount[rep], 0.0),
          items=np.where(slot == 2, items_cart[rep], np.where(slot == 3, items_buy[rep], 0.0)))  # fmt: skip

    # state updates from what was observed before churn
    cut = end[si]
    buy_t = np.where(buy, times[np.minimum(first + b3, total - 1)], np.inf)
    ticket_t = np.where(ticket, times[np.minimum(first + b4, total - 1)], np.inf)
    s["streak"][si] += 0.25 * views + (cart & ~buy)
    ok = buy & (buy_t < cut)
    b, bt = si[ok], buy_t[ok]
    prev_stage = s["stage"][b]
    s["streak"][b] = 0.0
    s["n_buy"][b] += 1
    s["score"][b] += 1.0
    s["last_buy"][b] = bt
    for code, moved in (
        (FIRST, prev_stage <= CONS),
        (RET, (prev_stage == FIRST) & (s["n_buy"][b] >= 2)),
        (LOY, (prev_stage == RET) & (s["score"][b] >= LOYAL_ENTER)),
    ):
        s["stage"][b[moved]] = code
        out.add_stage(s["cid"][b[moved]], code, bt[moved])
    ok = ticket & (ticket_t < cut) & np.isinf(s["ticket_at"][si])
    k, kt = si[ok], ticket_t[ok]
    quick = rng.random(k.size) < RESOLVE_SHARE
    delay = np.where(quick, rng.exponential(1.5, k.size), 20.0 + rng.exponential(40.0, k.size))
    s["ticket_at"][k] = kt
    s["resolve_at"][k] = kt + delay  # days


def _emit(out: _Buffers, s: dict[str, np.ndarray], idx: np.ndarray, times: np.ndarray,
          action: np.ndarray | int, channel: np.ndarray | int, device: np.ndarray, end: np.ndarray,
          amount: np.ndarray | None = None, items: np.ndarray | None = None) -> None:  # fmt: skip
    """Record events of live-slice customers ``idx`` that happen before their churn / window end."""
    keep = times < end[idx]
    n = int(keep.sum())
    out.add_events(
        customer=s["cid"][idx[keep]],
        time=times[keep],
        action=np.broadcast_to(np.asarray(action, np.uint8), idx.shape)[keep],
        channel=np.broadcast_to(np.asarray(channel, np.uint8), idx.shape)[keep],
        device=device[keep],
        amount=amount[keep] if amount is not None else np.zeros(n),
        items=items[keep] if items is not None else np.zeros(n),
    )


def _collect(pop: _Population, out: _Buffers) -> RawJourneys:
    """Concatenate the daily buffers and put per-customer arrays back in customer-index order."""

    def by_customer(values: np.ndarray) -> np.ndarray:
        result = np.empty_like(values)
        result[pop.s["cid"]] = values
        return result

    ev = {k: np.concatenate(v) for k, v in out.events.items()} if out.events else {}
    empty = {k: np.zeros(0, d) for k, d in
             [("customer", np.int64), ("time", float), ("action", np.uint8), ("channel", np.uint8),
              ("device", np.uint8), ("amount", float), ("items", float)]}  # fmt: skip
    ev = ev or empty
    stages = out.stages or [(np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0))]
    return RawJourneys(
        event_customer=ev["customer"],
        event_time=ev["time"],
        event_action=ev["action"],
        event_channel=ev["channel"],
        event_device=ev["device"],
        event_amount=ev["amount"],
        event_items=ev["items"],
        segment=by_customer(pop.s["segment"]),
        acquired=by_customer(pop.s["acquired"]),
        churned=by_customer(pop.s["churn_at"]),
        stage_customer=np.concatenate([c for c, _, _ in stages]),
        stage_code=np.concatenate([k for _, k, _ in stages]),
        stage_time=np.concatenate([x for _, _, x in stages]),
    )
