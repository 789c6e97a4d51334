"""A stand-in for `requests.post`, enough for the reference's Retriever (a JSON POST to the
local retriever, reading status_code, json() and text); used by bench/gpu/ref_timed.py only
when the real package is not installed."""
import json as _json
import urllib.error
import urllib.request


class Response:
    def __init__(self, status_code, body):
        self.status_code, self.text = status_code, body.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.text)


def post(url, headers=None, data=None, json=None, timeout=None):
    if json is not None:
        data = _json.dumps(json)
    body = data.encode() if isinstance(data, str) else data
    req = urllib.request.Request(url, data=body, headers=headers or {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.read())
