"""Imports every table so ``Base.metadata`` is complete (Alembic and tests use it)."""

from app.acd.models import Agent, AgentSession, AgentSkill, Call, Campaign, Queue, Seat, Site, Timer
from app.alerts.models import AlertAcknowledgement
from app.auth.models import AuthSession, LoginThrottle, User, WsTokenUse
from app.cti.models import ScreenPop
from app.pledges.models import (
    IdempotencyRecord,
    Pledge,
    PledgeAudit,
    PledgePayment,
    PledgeRollup,
)
from app.practice.models import PracticeCall
from app.privacy.models import PrivacyAction, PurgedCampaign
from app.realtime.models import Event
from app.receipts.models import Receipt, ReceiptCampaign, ReceiptCounter, ReceiptOrganisation
from app.reconciliation.models import PaymentImport, PaymentLine, PaymentSource
from app.roster.models import Shift, ShiftSignup
from app.rules.models import NumberBlock, RuleFile
from app.surge.models import Page, QueueSurge, SmsMessage, Standby
from app.telephony.models import Command, InboundEvent

__all__ = [
    "Agent",
    "AgentSession",
    "AgentSkill",
    "AlertAcknowledgement",
    "AuthSession",
    "Call",
    "Campaign",
    "Command",
    "Event",
    "IdempotencyRecord",
    "InboundEvent",
    "LoginThrottle",
    "NumberBlock",
    "Page",
    "PaymentImport",
    "PaymentLine",
    "PaymentSource",
    "Pledge",
    "PledgeAudit",
    "PledgePayment",
    "PledgeRollup",
    "PracticeCall",
    "PrivacyAction",
    "PurgedCampaign",
    "Queue",
    "QueueSurge",
    "Receipt",
    "ReceiptCampaign",
    "ReceiptCounter",
    "ReceiptOrganisation",
    "RuleFile",
    "ScreenPop",
    "Seat",
    "Shift",
    "ShiftSignup",
    "Site",
    "SmsMessage",
    "Standby",
    "Timer",
    "User",
    "WsTokenUse",
]
