"""A stand-in for the one part of Function that cannot run here: its prediction-creation call.

`POST /v1/predictions` does what Function's documentation says Function does with an owner's
authorizationUrl: it POSTs {"tag", "accessKey"} there (the access key is the caller's bearer
token, passed on untouched), and on a refusal answers the caller the way Function's API answers
errors, {"errors": [{"message": ...}]}, with tollbooth's message word for word. On an allow it
answers a prediction with no results (no predictor runs here). `GET /count` says how many
authorizations were asked for.

    python function_standin.py PORT AUTHORIZE_URL
"""

import json
import sys
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTHORIZE_URL = sys.argv[2]
COUNT = {"authorizations": 0}
LOCK = threading.Lock()


def authorize(tag, access_key):
    with LOCK:
        COUNT["authorizations"] += 1
    body = json.dumps({"tag": tag, "accessKey": access_key}).encode()
    request = urllib.request.Request(
        AUTHORIZE_URL, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/count":
            with LOCK:
                self.answer(200, dict(COUNT))
        else:
            self.answer(404, {"errors": [{"message": "Not found"}]})

    def do_POST(self):
        if self.path != "/v1/predictions":
            self.answer(404, {"errors": [{"message": "Not found"}]})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        authorization = self.headers.get("Authorization") or ""
        access_key = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else ""
        status, answer = authorize(body.get("tag", ""), access_key)
        if status != 200:
            message = answer.get("error", "The prediction was not authorized.")
            self.answer(status, {"errors": [{"message": message}]})
            return
        self.answer(200, {
            "id": "pred_" + uuid.uuid4().hex,
            "tag": body.get("tag"),
            "configuration": None,
            "resources": [],
            "results": None,
            "created": datetime.now(timezone.utc).isoformat(),
        })


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
