"""Routing's HTTP API for agencies: the handover of a referral (the CloudEvent's dataref)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from services.routing.adapters.repository import RoutingRepository
from shared.auth import Principal
from shared.http import Problem

HANDOVER_PATH = "/v1/referrals/{referral_id}"


class Handover(BaseModel):
    referral_id: str
    help_request_id: str
    agency: str
    library: str
    theme: str
    subtheme: str | None
    contact_preference: str | None
    status: str


def build_router(*, authenticated, repo: RoutingRepository) -> APIRouter:
    router = APIRouter()

    @router.get(HANDOVER_PATH, response_model=Handover, tags=["referrals"])
    async def handover(referral_id: str, caller: Annotated[Principal, Depends(authenticated)]) -> Handover:
        """The handover of a warm referral, for the receiving agency only."""
        referral = await repo.referral(referral_id)
        # Any other caller gets 404: a referral's existence is not revealed to other agencies.
        if referral is None or caller.role != "agency" or referral["agency"] != caller.organisation:
            raise Problem(404, "Referral not found")
        return Handover.model_validate(referral)

    return router
