"""The Bayes predictor given the observable history, for the cross-channel journeys world.

Used by ``benchmarks/bench_ceiling.py`` (rows marked ``[history]``). Given a customer's events
before the cutoff, the day-by-day process of ``journeyformer.synthetic.process`` has a
likelihood that is computable in closed form for every value of the latent parameters:

* what the history fixes exactly: the acquisition time (the first event), every session (at
  most one a day: platform, views, cart, purchase, ticket, spend), the e-mail opens and clicks,
  the ticket resolutions, and therefore the purchase score, purchase memory, view/cart streak,
  open tickets and the stage path after the first purchase (recomputed here day by day);
* what it does not: the segment, the activity multiplier, the e-mail propensity (Beta(4, 2)
  draw), the disengagement time, the consideration time (the stage before the first purchase),
  the Exp(1) hazard budget and whether and on which day the customer churned after the last
  event (a churned customer is silent; so is a quiet one).

The likelihood of the history given (segment, activity, propensity, disengagement,
consideration) is a product over days: P(session or none) x P(session content) x
Poisson(opens) x Binomial(clicks), times the survival exp(-cumulative hazard) up to the last
event, times the sum over the silent days after it of "alive and silent until day d, churned on
d" plus "alive and silent up to the fork" (the budget is integrated out exactly). Segment x a
64-point log grid of activity (placed where a coarse first pass found the posterior, shifted
per draw) x ``J`` stratified prior draws of (propensity, disengagement, consideration) are
weighed by it, and ``k`` posterior draws of the latent state, alive or churned, are simulated
forward with the package's own ``_step``. The same sum carried on past the fork to the end of
the window gives P(no event after the fork), the churn label, in closed form. E-mail arrivals
are taken as Poisson(0.2) a day (binomial over the population in the simulator).

Approximations, all of order one day or one event: a session cut at midnight is read as if it
had ended there, a customer who churns on the day of its last event is counted from the next
day, and on the day it churns it is silent with probability sqrt(P(silent all day)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from journeyformer.synthetic import params as P
from journeyformer.synthetic import process as sp

_MS_PER_DAY = 86_400_000
SESSION_ACTIONS = ("page_view", "product_view", "add_to_cart", "purchase", "app_open", "social_engage", "support_ticket")
PRE = -1  # stage placeholder before the first purchase: acquisition or consideration
N_ACT = 64
LOG_ACT = np.linspace(math.log(0.002), math.log(15.0), N_ACT)  # activity grid (log), spacing 0.14
CAP = P.SESSION_CAP
EMAIL_RATE = P.EMAILS_PER_DAY
_X = np.linspace(0.0, 1.0, 4001)
STORE_MISS = P.SEG_PLATFORM[:, P.IN_STORE] * (1 - P.STORE_BUY)  # (S,) store visit, no purchase


@dataclass
class Observed:
    """One customer's history before the fork (the first midnight after the cutoff), day by day
    from the acquisition day ``a0`` (index 0) to the end of the window: the days from the fork
    on are silent (what a churn label asks). Stages are codes of ``P.LATENT_STAGES`` or ``PRE``."""

    acq: float  # acquisition time, days since start
    a0: int
    last: int  # index of the day of the last event
    fork: int  # index of the fork day
    sess: np.ndarray  # (n,) bool: an observed session
    content: np.ndarray  # (n, S, 2) log P(session content | segment, stage ACQ / CONS) for PRE days
    content_known: np.ndarray  # (n, S) the same for days with a known stage
    opens: np.ndarray  # (n,) e-mail opens
    clicks: np.ndarray  # (n,)
    g: np.ndarray  # (n,) exp(streak and purchase-memory terms of the log hazard)
    tk: np.ndarray  # (n,) 1 where an unresolved ticket adds the ticket hazard
    stage_h: np.ndarray  # (n,) stage at the hazard and the session (PRE before the first purchase)
    stage_c: np.ndarray  # (n,) stage when the day's e-mails are clicked
    end: dict[str, float]  # state at the fork: score, memory, streak, n_buy, stage, ticket_at
    dow: np.ndarray  # (n,) weekday 0..6


def _content(plat: int, views: int, cart: bool, buy: bool, ticket: bool, log_spend: float,
             stage: int, first: bool) -> np.ndarray:  # fmt: skip
    """log P(one session's content | segment), (S,), at ``stage``; ``first``: the acquisition
    session (its platform is never the store: a store draw becomes web)."""
    if first:
        pl_p = P.SEG_PLATFORM[:, plat] + (P.SEG_PLATFORM[:, P.IN_STORE] if plat == P.ON_WEB else 0.0)
    else:
        pl_p = P.SEG_PLATFORM[:, plat]
    ll = np.log(pl_p)
    if plat != P.IN_STORE:
        lam = P.STAGE_VIEWS[stage] * (0.5 if plat == P.ON_SOCIAL else 1.0)
        ll = ll + views * math.log(lam) - lam
        pc = P.STAGE_CART[stage] * P.SEG_CART
        ll = ll + np.log(pc if cart else 1 - pc)
        if cart:
            pb = np.minimum(P.STAGE_BUY[stage] * P.SEG_BUY, 0.95)
            ll = ll + np.log(pb if buy else 1 - pb)
    else:
        ll = ll + math.log(P.STORE_BUY if buy else 1 - P.STORE_BUY)
    pt = P.STAGE_TICKET[stage]
    ll = ll + math.log(pt if ticket else 1 - pt)
    if buy:
        z = (log_spend - P.SEG_SPEND_MU) / P.SEG_SPEND_SIGMA
        ll = ll - np.log(P.SEG_SPEND_SIGMA) - 0.5 * z * z
    return ll


def observe(frame: pl.DataFrame, cutoff_day: int, start_weekday: int, end_day: int) -> Observed:
    """Read one customer's events (time ``t`` in days since start, action, amount, items;
    sorted by time, all before ``cutoff_day``, the fork) into an :class:`Observed` that runs to
    ``end_day`` (exclusive)."""
    t = frame["t"].to_numpy()
    action = frame["action"].to_list()
    amount, items = frame["amount"].to_numpy(), frame["items"].to_numpy()
    acq = float(t[0])
    a0 = math.floor(acq)
    n = end_day - a0
    day = np.floor(t).astype(np.int64) - a0
    sess = np.zeros(n, bool)
    info: dict[int, dict] = {}
    opens, clicks = np.zeros(n), np.zeros(n)
    resolved = np.zeros(n, bool)
    for i, a, am, it in zip(day, action, amount, items, strict=True):
        if a == "email_open":
            opens[i] += 1
        elif a == "email_click":
            clicks[i] += 1
        elif a == "ticket_resolved":
            resolved[i] = True
        else:
            d = info.setdefault(int(i), {"plat": P.IN_STORE, "views": 0, "cart": False, "buy": False,
                                         "ticket": False, "spend": 0.0})  # fmt: skip
            sess[i] = True
            if a == "page_view":
                d["plat"] = P.ON_WEB
            elif a == "app_open":
                d["plat"] = P.ON_APP
            elif a == "social_engage":
                d["plat"] = P.ON_SOCIAL
            elif a == "product_view":
                d["views"] += 1
            elif a == "add_to_cart":
                d["cart"] = True
            elif a == "purchase":
                d["buy"] = True
                d["spend"] = math.log(am) - 0.8 * math.log(it)
            elif a == "support_ticket":
                d["ticket"] = True
    ticket_times = {int(i): float(tt) for i, a, tt in zip(day, action, t, strict=True) if a == "support_ticket"}
    g, tk = np.ones(n), np.zeros(n)
    stage_h = np.full(n, PRE, np.int64)
    stage_c = np.full(n, PRE, np.int64)
    content = np.zeros((n, len(P.SEGMENTS), 2))
    content_known = np.zeros((n, len(P.SEGMENTS)))
    score = memory = streak = 0.0
    n_buy, stage, ticket_at = 0, PRE, math.inf
    d_score, d_mem, d_streak = (math.exp(-1 / x) for x in (P.SCORE_DECAY_DAYS, P.PURCHASE_MEMORY, P.STREAK_MEMORY))
    for i in range(n):
        tday = a0 + i
        if tday == cutoff_day:
            end = {"score": score, "memory": memory, "streak": streak, "n_buy": n_buy, "stage": stage, "ticket_at": ticket_at}
        if i > 0:
            score, memory, streak = score * d_score, memory * d_mem, streak * d_streak
            if stage == P.LOY and score < P.LOYAL_EXIT:
                stage = P.RET
        stage_h[i] = stage if i > 0 else P.ACQ
        g[i] = math.exp(P.LOG_STREAK_EFFECT * streak - P.LOG_PURCHASE_EFFECT * memory)
        tk[i] = float(ticket_at <= tday - P.TICKET_GRACE)
        if sess[i]:
            d = info[i]
            args = (d["plat"], d["views"], d["cart"], d["buy"], d["ticket"], d["spend"])
            if stage_h[i] == PRE:
                content[i, :, 0] = _content(*args, P.ACQ, False)
                content[i, :, 1] = _content(*args, P.CONS, False)
            else:
                content_known[i] = _content(*args, int(stage_h[i]), i == 0)
            online = d["plat"] != P.IN_STORE
            streak = min(streak + P.VIEW_STREAK * d["views"] + float(online and d["cart"] and not d["buy"]), P.STREAK_CAP)
            if d["buy"]:
                streak, memory, score, n_buy = 0.0, 1.0, score + 1.0, n_buy + 1
                if stage in (PRE, P.ACQ, P.CONS):
                    stage = P.FIRST
                elif stage == P.FIRST and n_buy >= 2:
                    stage = P.RET
                elif stage == P.RET and score >= P.LOYAL_ENTER:
                    stage = P.LOY
            if d["ticket"] and math.isinf(ticket_at):
                ticket_at = ticket_times[i]
        stage_c[i] = stage
        if resolved[i]:
            ticket_at = math.inf
    last = int(day.max())
    dow = (start_weekday + a0 + np.arange(n)) % 7
    return Observed(acq, a0, last, cutoff_day - a0, sess, content, content_known, opens, clicks, g, tk, stage_h, stage_c, end, dow)


def _delay_survival(x: np.ndarray | float) -> np.ndarray:
    """P(a ticket's resolution delay > x days)."""
    x = np.asarray(x, float)
    return P.RESOLVE_SHARE * np.exp(-np.maximum(x, 0) / 1.5) + (1 - P.RESOLVE_SHARE) * np.exp(-np.maximum(x - 20.0, 0) / 40.0)


def posterior(obs: Observed, draws: dict[str, np.ndarray], act: np.ndarray, ticket_hazard: float,
              churn_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Log weights (S, A, J) of the particles segment x activity x draw and, per particle,
    P(alive at the fork | history, particle) and P(no event from the fork to the end of the
    window | history, particle) (the churn label, in closed form). ``draws``: (J,) ``beta`` (e-mail propensity
    draw), ``disengage_at`` and ``consider_at`` (days since start); ``act`` (A, J) activity
    values, on a grid evenly spaced in log activity (the prior weight is its density times
    the activity)."""
    n, j_n = len(obs.sess), act.shape[1]
    t = obs.a0 + np.arange(n)
    base_h = P.BASE_HAZARD * churn_scale * math.exp(P.LOG_ENGAGEMENT_EFFECT * P.DISENGAGE_DEPTH)
    hazard0 = base_h * P.SEG_HAZARD[:, None, None] * act[None] ** -P.ACTIVITY_HAZARD_POWER  # (S, A, J)
    rate = P.SEG_SESSIONS[:, None, None] * act[None]
    mail = np.clip(P.SEG_EMAIL[:, None, None] * draws["beta"][None, None] * 1.5 * np.sqrt(act)[None], 0.01, 0.95)
    # per draw and day: stage (PRE resolved by the consideration day), engagement terms
    dc = np.floor(draws["consider_at"]).astype(np.int64) + 1  # first day in consideration
    pre_stage = np.where(t[None, :] < dc[:, None], P.ACQ, P.CONS)  # (J, n)
    st_h = np.where(obs.stage_h[None] == PRE, pre_stage, obs.stage_h[None])
    st_c = np.where(obs.stage_c[None] == PRE, pre_stage, obs.stage_c[None])
    eng = np.exp(P.DISENGAGE_RATE * np.minimum(draws["disengage_at"][:, None] - t[None], 0.0))  # (J, n)
    e_h = np.exp(-P.LOG_ENGAGEMENT_EFFECT * P.DISENGAGE_DEPTH * eng)
    f_m = 1.0 - P.DISENGAGE_DEPTH * (1.0 - eng)
    hday = P.STAGE_HAZARD[st_h] * obs.g[None] * e_h  # (J, n) hazard / hazard0
    # log P(no observable session) and log P(session) per (S, A, J, stage, weekday)
    q = np.minimum(rate[..., None] * P.STAGE_SESSIONS[None, None, None, :5], CAP)[..., None] * P.DOW  # (S,A,J,5,7)
    miss = STORE_MISS[:, None] * (1 - P.STAGE_TICKET[None, :5])  # (S, 5)
    l0 = np.log1p(-q * (1 - miss[:, None, None, :, None]))
    l1 = np.log(q)
    obs_days = np.arange(1, obs.last + 1)  # alive and watched: hazard, sessions, e-mails
    cnt = np.zeros((j_n, 2, 5, 7))
    idx_j = np.repeat(np.arange(j_n), len(obs_days))
    np.add.at(cnt, (idx_j, np.tile(obs.sess[obs_days].astype(np.int64), j_n), st_h[:, obs_days].ravel(),
                    np.tile(obs.dow[obs_days], j_n)), 1.0)  # fmt: skip
    ll = np.einsum("sajkd,jkd->saj", l1, cnt[:, 1]) + np.einsum("sajkd,jkd->saj", l0, cnt[:, 0])
    # session content (the acquisition session included)
    days_s = np.flatnonzero(obs.sess[: obs.last + 1])
    known = obs.stage_h[days_s] != PRE
    content = obs.content_known[days_s[known]].sum(0)[:, None] + np.zeros((1, j_n))  # (S, J)
    pre = days_s[~known]
    if pre.size:
        cons = (st_h[:, pre] == P.CONS).astype(float)  # (J, m)
        content = content + obs.content[pre, :, 0].T @ (1 - cons).T + obs.content[pre, :, 1].T @ cons.T
    ll += content[:, None, :]
    # e-mails: Poisson opens with mean rate * propensity * f, Binomial clicks by stage
    o, k = obs.opens[obs_days], obs.clicks[obs_days]
    fo = f_m[:, obs_days]
    with np.errstate(divide="ignore"):
        ll += o.sum() * np.log(EMAIL_RATE * mail) - EMAIL_RATE * mail * fo.sum(1) + (o * np.log(fo)).sum(1)
    pc = P.STAGE_CLICK[st_c[:, obs_days]]
    ll += (k * np.log(pc) + (o - k) * np.log1p(-pc)).sum(1)
    # survival through the last event day
    ll -= hazard0 * hday[:, obs_days].sum(1) + ticket_hazard * obs.tk[obs_days].sum()
    # prior on the grid: segment shares, Exp(1) activity on a log grid
    ll += np.log(P.SEG_SHARE)[:, None, None] + (np.log(act) - act)[None]
    # the silent days after the last event: alive to day d - 1, churned on day d, or alive at
    # the fork; and on to the end of the window (the days from the fork on, for the churn label)
    tail = np.arange(obs.last + 1, n)
    ticket_open = math.isfinite(obs.end["ticket_at"])

    def resolved_after(x: np.ndarray | float) -> np.ndarray:  # an open ticket must stay open (silent)
        return _delay_survival(np.asarray(x, float) - obs.end["ticket_at"]) if ticket_open else np.ones(np.shape(x))

    h = hazard0[..., None] * hday[None, None, :, tail] + ticket_hazard * obs.tk[tail]  # (S, A, J, m)
    cell = st_h[:, tail] * 7 + obs.dow[tail][None]  # (J, m)
    lp0 = np.take_along_axis(l0.reshape(*l0.shape[:3], 35), np.broadcast_to(cell[None, None], (*ll.shape, len(tail))), 3)
    lp0 -= EMAIL_RATE * mail[..., None] * f_m[None, None, :, tail]
    step = lp0 - h
    log_a = np.cumsum(step, axis=3)
    before = np.concatenate([np.zeros((*ll.shape, 1)), log_a[..., :-1]], axis=3)
    churn = np.exp(before + 0.5 * lp0) * -np.expm1(-h) * resolved_after(t[tail] + 0.5)
    m = obs.fork - obs.last - 1  # silent days before the fork
    alive = np.exp(before[..., m]) * resolved_after(t[obs.fork])
    gone = churn[..., :m].sum(3)
    silent = gone + churn[..., m:].sum(3) + np.exp(log_a[..., -1]) * resolved_after(t[-1] + 1.0)
    return ll + np.log(gone + alive), alive / (gone + alive), silent / (gone + alive)


def _draws(acq: float, j_n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``j_n`` prior draws of the latent parameters the grid does not cover (stratified: one
    from each of ``j_n`` equal-probability bins, bins paired at random), and (J,) shifts of
    the activity grid as fractions of its spacing."""
    def strat() -> np.ndarray:
        return (rng.permutation(j_n) + rng.random(j_n)) / j_n

    beta = np.interp(strat(), 5 * _X**4 - 4 * _X**5, _X)  # Beta(4, 2) quantiles: its CDF is 5x^4 - 4x^5
    disengage = acq + P.DISENGAGE_DAYS * -np.log1p(-strat())
    consider = acq + P.CONSIDER_DAYS * -np.log1p(-strat())
    return {"beta": beta, "disengage_at": disengage, "consider_at": consider}, strat()


def fit(obs: Observed, j_n: int, rng: np.random.Generator, ticket_hazard: float, churn_scale: float = 1.0
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """The posterior of one customer's latent parameters as weighted particles, in two passes:
    a coarse activity grid over the whole prior range (0.002 .. 15), then 64 points over the
    range that holds the posterior (mean +- 6 sd of log activity, at least +- 0.6), each shifted
    by a per-draw fraction of its spacing. Returns normalised weights (S, A, J), P(alive at the
    fork | particle) and P(silent to the end of the window | particle) (S, A, J), the activity
    values (A, J) and the draws."""
    draws, shift = _draws(obs.acq, max(4, j_n // 2), rng)
    act = np.exp(LOG_ACT[:, None] + shift[None] * (LOG_ACT[1] - LOG_ACT[0]))
    log_w, _, _ = posterior(obs, draws, act, ticket_hazard, churn_scale)
    w = np.exp(log_w - log_w.max()).sum(0)
    w /= w.sum()
    mean = (w * np.log(act)).sum()
    half = max(6.0 * math.sqrt(max((w * (np.log(act) - mean) ** 2).sum(), 0.0)), 0.6)
    grid = np.linspace(mean - half, mean + half, N_ACT)
    draws, shift = _draws(obs.acq, j_n, rng)
    act = np.exp(grid[:, None] + shift[None] * (grid[1] - grid[0]))
    log_w, p_alive, p_silent = posterior(obs, draws, act, ticket_hazard, churn_scale)
    w = np.exp(log_w - log_w.max())
    return w / w.sum(), p_alive, p_silent, act, draws


def read_history(events: pl.DataFrame, ids: np.ndarray, start_ms: int, day: int) -> list[pl.DataFrame]:
    """Per customer of ``ids`` (in that order) its events before ``day``, time in days."""
    frame = (
        events.filter(pl.col("customer_id").is_in(pl.Series(ids).implode()))
        .with_columns(t=(pl.col("timestamp").dt.epoch("ms") - start_ms) / _MS_PER_DAY)
        .filter(pl.col("t") < day)
        .sort(["customer_id", "t"], maintain_order=True)
    )
    parts = frame.partition_by("customer_id", as_dict=True, maintain_order=True)
    return [parts[(int(c),)] for c in ids]


def history_futures(config, events: pl.DataFrame, ids: np.ndarray, day: int, k: int, seed: int,  # noqa: ANN001
                    j_n: int = 16) -> dict[str, np.ndarray]:  # fmt: skip
    """Simulated events of days ``day ..`` for ``k`` posterior draws (given the history before
    ``day`` only) of the latent state of customers ``ids`` (1-based). Also returns per customer
    ``p_gone`` (posterior P(churned by the fork)), ``p_churn`` (P(no event from the fork to the
    end of the window), in closed form), ``ess`` (effective sample size of the weights), ``p_segment`` (N, S) and
    ``log_activity`` (posterior mean)."""
    rng = np.random.default_rng(seed)
    start_ms = int(config.start_datetime.timestamp()) * 1000
    weekday = config.start_datetime.weekday()
    ticket_hazard = config.ticket_hazard * config.churn_scale
    n = len(ids)
    rows = n * k
    f32, inf = ("budget", "hz", "sess", "mail", "cum_hazard", "score", "memory", "streak", "email_base"), np.inf
    s = {name: np.zeros(rows, sp.F32) for name in f32} | {name: np.zeros(rows) for name in ("acquired", "rate", "hazard0")}
    s |= {name: np.full(rows, inf) for name in ("consider_at", "ticket_at", "resolve_at", "churn_at")}
    s |= {"cid": np.arange(rows), "segment": np.zeros(rows, np.uint8), "stage": np.zeros(rows, np.uint8),
          "disengage_at": np.zeros(rows, sp.F32), "loyal_floor": np.full(rows, -inf, sp.F32), "n_buy": np.zeros(rows, np.int32)}
    diag = {"p_gone": np.zeros(n), "p_churn": np.zeros(n), "ess": np.zeros(n), "p_segment": np.zeros((n, len(P.SEGMENTS))),
            "log_activity": np.zeros(n)}  # fmt: skip
    base_h = P.BASE_HAZARD * config.churn_scale * math.exp(P.LOG_ENGAGEMENT_EFFECT * P.DISENGAGE_DEPTH)
    for i, frame in enumerate(read_history(events, ids, start_ms, day)):
        obs = observe(frame, day, weekday, config.days)
        w3, p_alive, p_silent, act, draws = fit(obs, j_n, rng, ticket_hazard, config.churn_scale)
        w = w3.ravel()
        diag["ess"][i] = 1.0 / (w * w).sum()
        diag["p_gone"][i] = 1.0 - (w * p_alive.ravel()).sum()
        diag["p_churn"][i] = (w * p_silent.ravel()).sum()
        diag["p_segment"][i] = w3.sum((1, 2))
        diag["log_activity"][i] = (w3 * np.log(act)[None]).sum()
        pick = rng.choice(w.size, size=k, p=w)
        seg, a, j = np.unravel_index(pick, w3.shape)
        alive = rng.random(k) < p_alive.ravel()[pick]
        r = np.arange(k) * n + i  # replicate-major rows
        act_k = act[a, j]
        s["segment"][r] = seg
        s["acquired"][r] = obs.acq
        s["rate"][r] = P.SEG_SESSIONS[seg] * act_k * config.intensity
        s["hazard0"][r] = base_h * P.SEG_HAZARD[seg] * act_k**-P.ACTIVITY_HAZARD_POWER
        beta = draws["beta"][j]
        s["email_base"][r] = np.clip(P.SEG_EMAIL[seg] * beta * 1.5 * np.sqrt(act_k), 0.01, 0.95)
        s["disengage_at"][r] = draws["disengage_at"][j]
        stage = obs.end["stage"]
        if stage == PRE:
            st = np.where(np.floor(draws["consider_at"][j]) + 1 <= day - 1, P.CONS, P.ACQ)
        else:
            st = np.full(k, stage)
        s["consider_at"][r] = np.where(st == P.ACQ, draws["consider_at"][j], np.inf)
        s["stage"][r] = np.where(alive, st, P.CHURNED)
        for name in ("score", "memory", "streak", "n_buy"):
            s[name][r] = obs.end[name]
        if math.isfinite(obs.end["ticket_at"]):
            s["ticket_at"][r] = obs.end["ticket_at"]
            s["resolve_at"][r] = day + 1.0  # redrawn below from its law given it is still open
        s["churn_at"][r[~alive]] = day - 0.5
    everyone = np.arange(rows)
    sp._set_stage(s, everyone, s["stage"].copy())
    live = s["stage"] != P.CHURNED
    s["mail"][live] = s["email_base"][live]
    redraw_future_times(s, day, rng)  # cum_hazard is 0: the budget is a fresh Exp(1)
    ctx = sp._Context(config.days, ticket_hazard, min(P.EMAILS_PER_DAY * config.intensity, 0.95))
    future, none = sp._Buffers(), np.zeros(0, np.int64)
    for t in range(day, config.days):
        sp._step(rng, s, none, float(t), (weekday + t) % 7, ctx, future)
    cid = np.concatenate(future.events.get("customer", [none]))
    return {"pos": cid % n, "k": cid // n, "time": np.concatenate(future.events["time"]),
            "action": np.asarray(P.ACTIONS)[np.concatenate(future.events["action"])],
            "amount": np.concatenate(future.events["amount"]), "gone": np.zeros(n, bool), **diag}  # fmt: skip


def redraw_future_times(s: dict[str, np.ndarray], day: int, rng: np.random.Generator) -> None:
    """Redraw the latent times that lie in the future and have left no trace in the state or
    the history, from their law given the rest (so an oracle forked at ``day`` is a Bayes
    predictor, not a clairvoyant). The last simulated day ``day - 1`` only told that they
    had not happened by then. Churn: the rest of the Exp(1) hazard budget is Exp(1) again.
    Disengagement and consideration start at exponential times (memoryless). An open ticket
    was given a quick Exp(1.5) or slow 20 + Exp(40) resolution delay; given it has lasted e
    days, quick has posterior weight 0.55 exp(-e / 1.5) against 0.45 P(slow delay > e)."""
    last = float(day - 1)
    live = s["stage"] != P.CHURNED
    s["budget"][live] = s["cum_hazard"][live] + rng.exponential(1.0, int(live.sum())).astype(sp.F32)
    m = live & (s["disengage_at"] > last)
    since = np.maximum(last, s["acquired"])  # both were drawn at acquisition
    s["disengage_at"][m] = (since[m] + rng.exponential(P.DISENGAGE_DAYS, int(m.sum()))).astype(sp.F32)
    m = live & (s["stage"] == P.ACQ) & np.isfinite(s["consider_at"])
    s["consider_at"][m] = since[m] + rng.exponential(P.CONSIDER_DAYS, int(m.sum()))
    m = np.flatnonzero(live & np.isfinite(s["resolve_at"]))
    e = float(day) - s["ticket_at"][m]  # days open, resolution not yet due by ``day``
    quick = P.RESOLVE_SHARE * np.exp(-e / 1.5)
    slow = (1 - P.RESOLVE_SHARE) * np.exp(-np.maximum(e - 20.0, 0.0) / 40.0)
    is_quick = rng.random(m.size) < quick / (quick + slow)
    delay = np.where(is_quick, e + rng.exponential(1.5, m.size), np.maximum(e, 20.0) + rng.exponential(40.0, m.size))
    s["resolve_at"][m] = s["ticket_at"][m] + delay


def check(fut: dict[str, np.ndarray], truth: dict[str, np.ndarray], auroc) -> None:  # noqa: ANN001
    """Print how the history posterior compares with the latent truth of the same customers:
    a right posterior is calibrated (P(churned by the fork) in bins against the share that had),
    and the effective sample size of its weights. ``truth``: (N,) ``gone``, ``segment``,
    ``activity`` and optionally the ``churn`` labels; ``auroc(score, y)``."""
    p, gone = fut["p_gone"], truth["gone"]
    print(f"history posterior against the latent truth: P(churned, unseen, by the fork) mean {p.mean():.3f} "
          f"(truly churned: {gone.mean():.3f}), AUROC {auroc(p, gone):.4f}, Brier {((p - gone) ** 2).mean():.4f}")
    edges = [0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0001]
    cells = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (p >= lo) & (p < hi)
        if m.any():
            cells.append(f"[{lo:.2f},{min(hi, 1):.2f}) n={m.sum()} {p[m].mean():.3f}/{gone[m].mean():.3f}")
    print("  calibration, P(churned) bin: customers, mean posterior / share truly churned: " + "; ".join(cells))
    if "churn" in truth:
        print(f"  churn label in closed form: mean P(churn) {fut['p_churn'].mean():.4f}, share churned {truth['churn'].mean():.4f}")
    seg = truth["segment"].astype(np.int64)
    p_true = fut["p_segment"][np.arange(len(seg)), seg]
    print(f"  segment: P(true segment) mean {p_true.mean():.3f}, most likely = true for {(fut['p_segment'].argmax(1) == seg).mean():.3f}; "
          f"log activity: posterior mean vs truth correlation {np.corrcoef(fut['log_activity'], np.log(truth['activity']))[0, 1]:.3f}; "
          f"effective sample size per customer: min {fut['ess'].min():.0f}, median {np.median(fut['ess']):.0f}")  # fmt: skip
