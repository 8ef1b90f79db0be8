"""The ceiling for the API benchmark: a bare FastAPI GET returning a constant."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/v1/customers/{identifier}/stage")
async def stage(identifier: str) -> dict[str, str]:
    return {"customer_id": identifier, "stage": "decision"}
