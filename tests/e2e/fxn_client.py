"""What a Python user of Function's client sees, through the stand-in for Function's API.

    python fxn_client.py API_URL TAG CASES_JSON [fxn|muna]

`fxn` is Function's client; `muna` its successor (the same API, published as `muna`).

CASES_JSON maps a case name to an access key (null: no key at all). Prints one JSON object: for
each case, "ok" or the error the user sees (`str(FunctionAPIError)`), and for "local" cases the
outcome of loading the predictor to predict on this machine, twice in one process.
"""

import json
import sys
import urllib.request

import fxn.services.prediction as prediction_service
from fxn import Function


class NativePredictorStandIn:
    """Function's native runtime loads a predictor only with Function's servers (a signed
    configuration, downloaded resources), which cannot be reached here. This takes its place
    for the "cached" case, so the client's own Python code decides, as it does for its users,
    whether a second prediction asks Function's API (and so the authorizationUrl) again."""

    def __init__(self, configuration):
        self.loaded = True

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    def create_prediction(self, inputs):
        return _Prediction()


class _Prediction:
    id = "pred_local"
    results = None
    latency = 1.0
    error = None
    logs = None

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def authorizations():
    root = api_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/count", timeout=10) as response:
        return json.loads(response.read())["authorizations"]


api_url, tag, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = sys.argv[4] if len(sys.argv) > 4 else "fxn"


def make(key):
    if client == "muna":
        from muna import Muna
        return Muna(key, api_url=api_url)
    return Function(access_key=key, api_url=api_url)

seen = {}
for name, key in cases.items():
    fxn = make(key)
    if name == "local_cached":
        real = prediction_service.Predictor
        prediction_service.Predictor = NativePredictorStandIn
        try:
            before = authorizations()
            outcomes = []
            for _ in range(5):
                try:
                    fxn.predictions.create(tag=tag, inputs={"prompt": "a cat"})
                    outcomes.append("ok")
                except Exception as e:
                    outcomes.append(f"{type(e).__name__}: {e}")
            seen[name] = {"outcomes": outcomes, "authorizations": authorizations() - before}
        finally:
            prediction_service.Predictor = real
        continue
    if name == "local":
        # Predictions with inputs run on this machine: the client asks Function's API for the
        # predictor (and so the authorizationUrl is called) only when it has not loaded it yet.
        outcomes = []
        before = authorizations()
        for _ in range(2):
            try:
                fxn.predictions.create(tag=tag, inputs={"prompt": "a cat"})
                outcomes.append("ok")
            except Exception as e:
                outcomes.append(f"{type(e).__name__}: {e}")
        seen[name] = {"outcomes": outcomes, "authorizations": authorizations() - before}
        continue
    try:
        fxn.predictions.create(tag=tag)
        seen[name] = "ok"
    except Exception as e:  # what the user sees, whatever it is
        seen[name] = str(e)
print(json.dumps(seen))
