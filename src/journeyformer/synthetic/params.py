"""Parameters of the synthetic journey process (:mod:`journeyformer.synthetic.process`).

Rates are per day, probabilities per session or per e-mail, hazards in churns per day; tables
indexed by segment follow ``SEGMENTS`` and tables indexed by stage follow ``LATENT_STAGES``.
"""

from __future__ import annotations

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
ON_WEB, ON_APP, ON_SOCIAL, IN_STORE = range(4)  # session platforms

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
STAGE_SESSIONS = np.array([0.10, 0.11, 0.08, 0.08, 0.18, 0.0])  # sessions per day
STAGE_VIEWS = np.array([0.4, 1.4, 0.9, 0.9, 1.1, 0.0])  # mean product views per session
STAGE_CART = np.array([0.04, 0.30, 0.25, 0.30, 0.45, 0.0])  # P(add_to_cart | session)
STAGE_BUY = np.array([0.25, 0.30, 0.45, 0.50, 0.65, 0.0])  # P(purchase | cart)
STAGE_TICKET = np.array([0.004, 0.008, 0.05, 0.04, 0.035, 0.0])  # P(support_ticket | session)
STAGE_CLICK = np.array([0.10, 0.35, 0.20, 0.20, 0.25, 0.0])  # P(email_click | email_open)
STAGE_HAZARD = np.array([1.6, 1.2, 0.8, 0.6, 0.25, 0.0])  # churn-hazard multiplier

BASE_HAZARD = 0.0011  # churns per day before multipliers
ACTIVITY_SHAPE = 1.0  # gamma shape of the per-customer activity multiplier (mean 1)
ACTIVITY_HAZARD_POWER = 0.25  # base hazard ~ activity ** -power
EMAILS_PER_DAY = 0.2  # campaign e-mails received per live customer and day
STORE_BUY = 0.75  # P(purchase | store visit); a visit without purchase leaves no event
CONSIDER_DAYS = 20.0  # mean latent time from acquisition to consideration (days)
DISENGAGE_DAYS = 400.0  # mean time from acquisition to the start of e-mail disengagement (days)
DISENGAGE_RATE = 0.08  # per day: how fast engagement falls once disengagement starts
DISENGAGE_DEPTH = 0.9  # engagement falls to (1 - depth) of its base
SCORE_DECAY_DAYS = 60.0  # e-folding time of the purchase score (days)
LOYAL_ENTER, LOYAL_EXIT = 2.5, 1.0  # purchase-score thresholds with hysteresis
RESOLVE_SHARE = 0.55  # tickets resolved quickly (mean 1.5 days); the rest take 20 + Exp(40) days
TICKET_GRACE = 2.0  # days before an open ticket starts to raise the hazard
LOG_ENGAGEMENT_EFFECT = 1.8  # log-hazard at full disengagement
LOG_STREAK_EFFECT, STREAK_CAP = 0.3, 6.0  # per unit of streak (abandoned cart = 1)
VIEW_STREAK = 0.1  # streak units per product view without a purchase
STREAK_MEMORY = 30.0  # e-folding time of the streak (days)
LOG_PURCHASE_EFFECT, PURCHASE_MEMORY = 1.2, 14.0  # log-hazard reduction right after a purchase
DOW = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.2])  # Monday..Sunday session multiplier
SESSION_CAP = 0.9 / DOW.max()  # keeps the daily session probability below 0.9

# session platform -> entry action, channel of the entry event, channel of views/cart/purchase
ENTRY_ACTION = np.array([PV, APP_OPEN, SOCIAL_ENGAGE, BUY], dtype=np.uint8)
ENTRY_CHANNEL = np.array([WEB, APP, SOCIAL, STORE], dtype=np.uint8)
CONTENT_CHANNEL = np.array([WEB, APP, WEB, STORE], dtype=np.uint8)
# channel -> device probabilities, columns: desktop, mobile, tablet, in_store
CHANNEL_DEVICE = np.array(
    [[0.55, 0.35, 0.10, 0.0],
     [0.00, 0.85, 0.15, 0.0],
     [0.35, 0.58, 0.07, 0.0],
     [0.00, 0.00, 0.00, 1.0],
     [0.10, 0.85, 0.05, 0.0],
     [0.50, 0.45, 0.05, 0.0]]
)  # fmt: skip


def _cumulative(probs: np.ndarray) -> np.ndarray:
    """Row-wise cumulative probabilities whose last column is exactly 1."""
    cum = np.cumsum(probs, axis=1) / probs.sum(axis=1, keepdims=True)
    cum[:, -1] = 1.0
    return cum


CUM_DEVICE = _cumulative(CHANNEL_DEVICE)
CUM_PLATFORM = _cumulative(SEG_PLATFORM)
# relative weight of each hour of the day (UTC), 0..23
HOURS_ONLINE = np.array(
    [1, .6, .4, .3, .3, .5, 1, 2, 3, 3.5, 3.5, 3.8,
     4.2, 4, 3.8, 3.6, 3.8, 4.2, 5, 6, 6.5, 6, 4.5, 2.5]
)  # fmt: skip
HOURS_STORE = np.array([0.0] * 9 + [2, 4, 5, 6, 6, 5, 5, 6, 7, 7, 5, 3] + [0.0] * 3)
HOURS_EMAIL = np.array([0.3] * 6 + [2, 5, 6, 5, 4, 3, 3, 2.5, 2, 2, 2, 2.5, 3, 3, 2.5, 2, 1, 0.5])

SECOND = 1.0 / 86_400.0  # one second in days
