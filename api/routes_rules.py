"""The rules in force: their version and the re-evaluation after a change."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import schemas
from api.deps import Reads, ReadScope, Stages
from infra.problems import JSONBody

router = APIRouter(prefix="/v1", tags=["stages"])


@router.get("/rules", summary="The rules version in force", response_model=schemas.RulesAnswer)
async def rules(reads: Reads, stages: Stages, _: ReadScope) -> Response:
    """Which rules version the processors run, and whether every customer follows it yet:
    after a changed rules file, customers are re-evaluated in the background; until that
    finishes, each stage and profile answer says the `rules_version` it comes from."""
    state = await reads.rules_state()
    return JSONBody({**state.answer(), "api_version": stages.version, "stages": stages.stages})
