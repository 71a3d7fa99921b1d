"""The plain-framework baseline of SPEC section 11, kept for comparison only.

A small FastAPI + uvicorn (uvloop, httptools) app: the app a team would build instead of
Envoy + grpc.aio, doing the same checks and writes for two endpoints, `GET /customers/{id}`
and `POST /customers`, against the bench stack's own database. `make bench` runs it beside
the real service in the same run (bench/scenarios.py), so every project figure has its
baseline from the same rounds.

- app.py: the FastAPI app (`uvicorn --factory bench.baseline.app:create_app`);
- security.py: bearer token, RFC 9421 signature (http-message-signatures), nonces;
- database.py: the SQLModel engine and sessions (used from FastAPI's thread pool);
- process.py: starts and stops it as the bench does (imports neither FastAPI nor uvicorn).

Never imported by server/; this package imports the service's SQLModel tables (so it writes
the very same rows) and a few pure domain rules (CAIP-10, SIWE text), not its architecture.
"""
