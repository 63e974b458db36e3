"""Helpers the tests share: `Proc` (moved to harness.processes, which benchmarks and chaos use too) and `json_request`."""
from harness.processes import Proc  # noqa: F401


def json_request(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None,
                 timeout: float = 10) -> tuple[int, dict]:
    """``(status, decoded JSON body)`` of one HTTP request; an error status is returned, not raised."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
