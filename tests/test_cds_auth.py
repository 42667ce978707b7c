"""CDS Hooks calls authenticated by the EHR's signed JWT (issue 22, item 9), with keys made here.

The app is created with a trusted-issuers file (a real file) and a configured public URL; every
check of calculator/interop/cds_auth.py is exercised through POST /cds-services/<id>."""
from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from test_cds_hooks import SERVICE, example_call

PUBLIC = "https://cds.hospital.example"
AUDIENCE = PUBLIC + SERVICE
ISSUER = "https://ehr.hospital.example"
JKU = "https://ehr.hospital.example/.well-known/jwks.json"


def _jwk(private_key, kid: str) -> dict:
    algorithm = jwt.algorithms.ECAlgorithm if isinstance(private_key, ec.EllipticCurvePrivateKey) \
        else jwt.algorithms.RSAAlgorithm
    key = json.loads(algorithm.to_jwk(private_key.public_key()))
    return {**key, "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def keys():
    return {"ec": ec.generate_private_key(ec.SECP384R1()),
            "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "stranger": ec.generate_private_key(ec.SECP384R1())}


@pytest.fixture(scope="module")
def secured(trained_bundle_path, tmp_path_factory, keys):
    from calculator import create_app

    folder = tmp_path_factory.mktemp("issuers")
    (folder / "ehr-keys.json").write_text(json.dumps(
        {"keys": [_jwk(keys["ec"], "ec-1"), _jwk(keys["rsa"], "rsa-1")]}))
    path = folder / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"iss": ISSUER, "jwks_file": "ehr-keys.json", "jku": [JKU]}]}))
    return create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True,
                       "PUBLIC_URL": PUBLIC, "CDS_ISSUERS_FILE": str(path)})


def token(keys, *, key="ec", kid="ec-1", algorithm="ES384", headers=None, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "ehr-client-7", "aud": AUDIENCE, "iat": now,
               "exp": now + 120, "jti": str(uuid.uuid4())}
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, keys[key], algorithm=algorithm,
                      headers={"kid": kid, **(headers or {})})


def call(app, authorization: str | None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return app.test_client().post(SERVICE, json=example_call(), headers=headers)


def refused(answer) -> str:
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    (error,) = answer.get_json()["errors"]
    assert error["field"] == "Authorization"
    return error["message"]


@pytest.mark.parametrize("key, kid, algorithm", [("ec", "ec-1", "ES384"),
                                                 ("rsa", "rsa-1", "RS384")])
def test_a_token_from_a_trusted_issuer_gets_the_card(secured, keys, key, kid, algorithm):
    answer = call(secured, "Bearer " + token(keys, key=key, kid=kid, algorithm=algorithm))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (card,) = answer.get_json()["cards"]
    assert card["summary"].startswith("CR ")
    assert card["links"][0]["url"].startswith(PUBLIC + "/r/")


def test_discovery_needs_no_token(secured):
    assert secured.test_client().get("/cds-services").status_code == 200


BAD_TOKENS = {
    "no header": (lambda keys: None, "Authorization: Bearer"),
    "not bearer": (lambda keys: "Basic dXNlcjpwYXNz", "Authorization: Bearer"),
    "not a JWT": (lambda keys: "Bearer not.a.jwt", "not a JWT"),
    "untrusted issuer": (lambda keys: "Bearer " + token(keys, iss="https://evil.example"),
                         "not trusted"),
    "signed by another key": (lambda keys: "Bearer " + token(keys, key="stranger"),
                              "signature does not verify"),
    "unknown kid": (lambda keys: "Bearer " + token(keys, kid="nope"), "no key 'nope'"),
    "symmetric algorithm": (lambda keys: "Bearer " + jwt.encode(
        {"iss": ISSUER, "sub": "x", "aud": AUDIENCE, "iat": int(time.time()),
         "exp": int(time.time()) + 60, "jti": "h"}, "k" * 32, algorithm="HS256"),
        "'HS256' is not accepted"),
    "wrong audience": (lambda keys: "Bearer " + token(keys, aud="https://attacker.example"
                                                      + SERVICE), "aud is not this service"),
    "audience from the Host header": (lambda keys: "Bearer " + token(
        keys, aud="http://localhost" + SERVICE), "aud is not this service"),
    "expired": (lambda keys: "Bearer " + token(keys, exp=int(time.time()) - 120,
                                               iat=int(time.time()) - 300), "expired"),
    "issued in the future": (lambda keys: "Bearer " + token(keys, iat=int(time.time()) + 600,
                                                            exp=int(time.time()) + 700),
                             "in the future"),
    "lives too long": (lambda keys: "Bearer " + token(keys, exp=int(time.time()) + 3600),
                       "lives too long"),
    "no jti": (lambda keys: "Bearer " + token(keys, jti=None), "'jti'"),
    "no sub": (lambda keys: "Bearer " + token(keys, sub=None), "'sub'"),
    "jku not allow-listed": (lambda keys: "Bearer " + token(
        keys, headers={"jku": "https://attacker.example/keys.json"}), "not on the issuer's"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_call_without_a_valid_token_is_401_with_a_clear_json_body(secured, keys, case):
    make, words = BAD_TOKENS[case]
    message = refused(call(secured, make(keys)))
    assert words in message, message


def test_an_allow_listed_jku_uses_the_configured_keys_and_fetches_nothing(secured, keys):
    answer = call(secured, "Bearer " + token(keys, headers={"jku": JKU}))
    assert answer.status_code == 200


def test_a_replayed_token_is_refused(secured, keys):
    once = "Bearer " + token(keys)
    assert call(secured, once).status_code == 200
    assert "already used" in refused(call(secured, once))


def test_clock_skew_within_a_minute_is_tolerated(secured, keys):
    now = int(time.time())
    answer = call(secured, "Bearer " + token(keys, iat=now + 30, exp=now + 150))
    assert answer.status_code == 200


def test_an_open_service_is_announced_at_start_up(trained_bundle_path, caplog):
    from calculator import create_app

    with caplog.at_level("WARNING"):
        create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True})
    assert any("not authenticated" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("content, words", [
    ("{not json", "cannot read"),
    ('{"issuers": []}', "at least one issuer"),
    ('{"issuers": [{"iss": "x", "jwks": {"keys": [{"kty": "nonsense"}]}}]}', "not usable"),
])
def test_a_broken_issuers_file_stops_the_app(trained_bundle_path, tmp_path, content, words):
    from calculator import create_app
    from model.errors import ConfigurationError

    path = tmp_path / "issuers.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=words):
        create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True,
                    "PUBLIC_URL": PUBLIC, "CDS_ISSUERS_FILE": str(path)})


def test_issuers_without_a_public_url_stop_the_app(trained_bundle_path, tmp_path):
    from calculator import create_app
    from model.errors import ConfigurationError

    path = tmp_path / "issuers.json"
    path.write_text('{"issuers": [{"iss": "x", "jwks": {"keys": []}}]}')
    with pytest.raises(ConfigurationError, match="CART_RISK_PUBLIC_URL"):
        create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True,
                    "CDS_ISSUERS_FILE": str(path)})
