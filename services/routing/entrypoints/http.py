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


class Organisation(BaseModel):
    code: str
    name: str
    kind: str


def build_router(*, authenticated, repo: RoutingRepository) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.get("/v1/organisations", response_model=list[Organisation], tags=["reference data"])
    async def organisations(caller: Caller) -> list[Organisation]:
        """The organisations that receive referrals: the agencies and, as added, local partners."""
        return [Organisation(**org) for org in await repo.all_organisations()]

    @router.get(HANDOVER_PATH, response_model=Handover, tags=["referrals"])
    async def handover(referral_id: str, caller: Caller) -> Handover:
        """The handover of a warm referral, for the receiving agency only."""
        referral = await repo.referral(referral_id)
        # Any other caller gets 404: a referral's existence is not revealed to other agencies.
        if referral is None or caller.role != "agency" or referral["agency"] != caller.organisation:
            raise Problem(404, "Referral not found")
        return Handover.model_validate(referral)

    return router
