"""The wiring: one object per service, each given the context and the few services it
calls (explicit references, never inheritance). ``Vault`` (core/vault.py) builds it."""

from __future__ import annotations

from dataclasses import dataclass

from glasskey.core.alerts import AlertService
from glasskey.core.checkout import CheckoutService
from glasskey.core.context import VaultContext
from glasskey.core.credentials import CredentialService
from glasskey.core.drill import DrillService
from glasskey.core.emergency import KitService
from glasskey.core.factors import FactorService
from glasskey.core.finishing import RotationFinisher
from glasskey.core.notify_service import NotifyService
from glasskey.core.offboarding import OffboardingService
from glasskey.core.onboarding import OnboardingService
from glasskey.core.operators import OperatorService
from glasskey.core.redisplay import HolderService
from glasskey.core.requests import Requests
from glasskey.core.reviews import ReviewService
from glasskey.core.rotation import RotationService
from glasskey.core.sweep import SweepService


@dataclass(frozen=True)
class VaultServices:
    """The services of one vault, wired together (see the module docstring)."""

    operators: OperatorService
    factors: FactorService
    credentials: CredentialService
    requests: Requests
    reviews: ReviewService
    rotation: RotationService
    finishing: RotationFinisher
    onboarding: OnboardingService
    checkout: CheckoutService
    holder: HolderService
    kit: KitService
    offboarding: OffboardingService
    drill: DrillService
    notify: NotifyService
    sweep: SweepService
    alerts: AlertService

    @classmethod
    def build(cls, ctx: VaultContext) -> VaultServices:
        requests = Requests(ctx)
        reviews = ReviewService(ctx)
        credentials = CredentialService(ctx)
        rotation = RotationService(ctx, requests, reviews)
        onboarding = OnboardingService(ctx, requests, credentials, rotation, reviews)
        checkout = CheckoutService(ctx, requests, onboarding.rotate_release)
        kit = KitService(ctx, requests, reviews, rotation)
        notify = NotifyService(ctx)
        sweep = SweepService(ctx, requests=requests, rotation=rotation,
                             onboarding=onboarding, notify=notify)
        operators = OperatorService(ctx)
        return cls(
            operators=operators, factors=FactorService(ctx, operators),
            credentials=credentials, requests=requests, reviews=reviews, rotation=rotation,
            finishing=RotationFinisher(ctx, rotation), onboarding=onboarding, checkout=checkout,
            holder=HolderService(ctx, requests, checkout), kit=kit,
            offboarding=OffboardingService(ctx, requests), drill=DrillService(ctx),
            notify=notify, sweep=sweep,
            alerts=AlertService(ctx, requests=requests, reviews=reviews, rotation=rotation,
                                kit=kit, notify=notify, sweep=sweep))
