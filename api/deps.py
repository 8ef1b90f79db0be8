"""``Annotated`` dependencies shared by the routes (everything built in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.auth import require
from api.readmodel import ReadModel
from infra.problems import Problem
from touchpath.identifiers import Identifier, identifier_from_query
from touchpath.settings import ApiToken, Settings
from touchpath.stages import StageModel


async def _read_model(request: Request) -> ReadModel:
    model: ReadModel = request.app.state.read_model
    return model


async def _stage_model(request: Request) -> StageModel:
    model: StageModel = request.app.state.stage_model
    return model


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _identifier(
    identifier: str,
    type: Annotated[
        str,
        Query(
            description="user_id, anonymous_id, email, phone, or an "
            "external id type such as intercom_user",
            examples=["user_id"],
        ),
    ] = "user_id",
) -> Identifier:
    found = identifier_from_query(identifier, type)
    if found is None:
        raise Problem(400, "Invalid identifier", f"{identifier!r} is not a usable {type}")
    return found


Reads = Annotated[ReadModel, Depends(_read_model)]
Stages = Annotated[StageModel, Depends(_stage_model)]
Config = Annotated[Settings, Depends(_settings)]
CustomerRef = Annotated[Identifier, Depends(_identifier)]
ReadScope = Annotated[ApiToken, Depends(require("read"))]
AdminScope = Annotated[ApiToken, Depends(require("admin"))]
