"""The compression-competition entry: an ASGI service the subnet's sandbox starts with
`python3 -m uvicorn app:app --host 127.0.0.1 --port 8003` (spec: ../shared/spec/competition.md §3).

    app.py       the Starlette app: GET /health, POST /compress, a background warm-up at start
    routes.py    the two handlers: parse a batch, refuse bad items one by one, run the rest at once
    contract.py  the request and response shapes (pydantic)
    paths.py     the local-path rules (roots, traversal, symlinks, existing or duplicate outputs)
    budget.py    the validator's deadline formula, the time this service gives itself, the CPUs it has
    item.py      one item: our compressor core (AV1 in MP4), the source's audio copied, SAR set, moved into place
    fallback.py  the fast way (one unmeasured encode): when the core has no verified output in time, or
                 the input is too long for any search
    settings.py  COMPETITION_* settings (input and output roots, margins, scratch space)

It imports no torch, openvino, grpc or bittensor: start-up is billed.
"""
