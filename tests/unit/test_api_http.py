"""The API's HTTP edge without data: access control, problem documents, the OpenAPI spec.

No request here reaches Redis except the last one, which finds it down (a closed port)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.embedded import free_port
from touchpath.settings import load_settings

READ, ADMIN, WRITE_KEY = "tok_unit_read", "tok_unit_admin", "wk_unit"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = load_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        api_tokens=f"{READ}=read,{ADMIN}=read+admin,{WRITE_KEY}=read",
        write_keys=f"{WRITE_KEY}=website:web",
        log_level="ERROR",
    )
    with TestClient(create_app(settings, tune_gc=False), raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/v1/stages", "/v1/customers/ada/stage", "/v1/funnel"])
@pytest.mark.parametrize(
    "headers",
    [{}, bearer("nope"), bearer(WRITE_KEY), {"Authorization": f"Basic {WRITE_KEY}"}],
)
def test_without_a_known_token_401(client: TestClient, path: str, headers: dict[str, str]) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401 and response.json()["instance"] == path


def test_erasing_needs_the_admin_scope(client: TestClient) -> None:
    response = client.delete("/v1/customers/ada", headers=bearer(READ))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    body = response.json()
    assert body["title"] == "Forbidden"
    assert (body["code"], body["message"]) == ("forbidden", body["detail"])  # Segment clients


def test_invalid_parameters_are_a_400_problem_with_field_errors(client: TestClient) -> None:
    response = client.get("/v1/customers/ada/journey", params={"limit": 0}, headers=bearer(READ))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "query.limit"
    bad_type = client.get("/v1/customers/x/stage", params={"type": "email"}, headers=bearer(READ))
    assert bad_type.status_code == 400 and "email" in bad_type.json()["detail"]
    for params in ({"group_by": "nonsense"}, {"stalled_after": "soon"}, {"since": "yesterday"}):
        assert client.get("/v1/funnel", params=params, headers=bearer(READ)).status_code == 400


def test_unknown_paths_and_methods_are_problems(client: TestClient) -> None:
    missing = client.get("/v1/nothing", headers=bearer(READ))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = client.put("/v1/stages", headers=bearer(READ))
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]


def test_service_routes_stay_open(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/readyz").status_code == 503  # Redis is down here
    assert client.get("/metrics").status_code == 200


def test_openapi_documents_every_operation(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    operations = [
        (path, op)
        for path, item in spec["paths"].items()
        for op in item.values()
        if path.startswith("/v1/") and not path.startswith("/v1/stream/")
    ]
    assert len(operations) == 21  # incl. the split, the three account operations, the rules
    for path, op in operations:
        assert op["security"] == [{"bearer": []}], path
        assert "422" not in op["responses"]
        success = op["responses"].get("200") or op["responses"]["201"]
        answer = success["content"]["application/json"]["schema"]["$ref"]
        assert schemas[answer.rsplit("/", 1)[1]]["examples"], path
        for status in ("400", "401", "403"):
            problem = op["responses"][status]["content"]["application/problem+json"]
            assert problem["example"]["status"] == int(status)
    stream = spec["paths"]["/v1/stream/stage-changes"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    stage = spec["paths"]["/v1/customers/{identifier}/stage"]["get"]
    assert [p["name"] for p in stage["parameters"]] == ["identifier", "type", "as_of"]


def test_redis_down_is_a_503_problem(client: TestClient) -> None:
    response = client.get("/v1/customers/ada/stage", headers=bearer(READ))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["title"] == "Service Unavailable"
