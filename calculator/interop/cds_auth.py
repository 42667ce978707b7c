"""Who may call the CDS Hooks service: the EHR's signed JWT (CDS Hooks 2.0, "Trusting CDS
Clients"), checked with PyJWT against issuers configured in a local file.

Configuration (docs/cds-hooks.md, "Authentication"):

- ``CART_RISK_CDS_ISSUERS``: a JSON file naming the trusted issuers and their public keys::

      {"issuers": [{"iss": "https://ehr.hospital.example",
                    "jwks": {"keys": [...]},            # or "jwks_file": "ehr-keys.json"
                    "jku": ["https://ehr.hospital.example/jwks.json"]}]}

  ``jku`` lists the key-set URLs the issuer's tokens may name. They are an allow-list, not
  addresses to visit: **the service fetches nothing** (the keys are the ones in the file), so no
  token can make it send a request anywhere. A token naming a ``jku`` not on its issuer's list
  is refused.
- ``CART_RISK_PUBLIC_URL``: the service's address as the EHR knows it (e.g.
  ``https://cds.hospital.example``); the token's ``aud`` must be this address plus
  ``/cds-services/<service id>``. It is configured, never taken from the request's Host header.

Once issuers are configured every service call needs ``Authorization: Bearer <JWT>`` with
``iss`` (trusted), ``sub``, ``aud``, ``exp`` (at most :data:`MAX_LIFETIME_SECONDS` ahead),
``iat`` (not in the future) and ``jti`` (not seen before), signed with an asymmetric algorithm
(:data:`ALGORITHMS`) by a key of the issuer's set; clocks may differ by
:data:`CLOCK_SKEW_SECONDS`. Anything else is answered 401 with a JSON ``errors`` body. Without
issuers the service is open (as before) and the app logs a warning at start-up.

Replay protection keeps each token's ``jti`` until it expires, in this process: with several
gunicorn workers a token could be replayed once per worker within its lifetime (at most
:data:`MAX_LIFETIME_SECONDS`); a shared store would be needed to close that.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from model.errors import ConfigurationError

ISSUERS_VARIABLE = "CART_RISK_CDS_ISSUERS"
PUBLIC_URL_VARIABLE = "CART_RISK_PUBLIC_URL"
#: Signature algorithms accepted (asymmetric only: CDS Hooks names ES384 and RS384).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
#: Clock difference tolerated on ``exp`` and ``iat`` (seconds).
CLOCK_SKEW_SECONDS = 60
#: Longest token lifetime accepted: CDS Hooks says at most five minutes (seconds).
MAX_LIFETIME_SECONDS = 5 * 60
#: Most token ids remembered at once; past it, calls are refused until some expire.
MAX_REMEMBERED_TOKENS = 100_000


class Unauthorized(Exception):
    """A service call without a valid token; the message says why (answered 401)."""


@dataclass(frozen=True)
class IssuerKey:
    """One public key of an issuer's JWK Set: its ``kid``, its ``alg`` (None: any accepted
    algorithm of its type) and the key itself."""

    kid: str | None
    algorithm: str | None
    public_key: Any


@dataclass
class TrustedIssuers:
    """The issuers of the configuration file, and the token ids already used.

    Attributes
    ----------
    keys : dict
        ``iss`` -> the issuer's :class:`IssuerKey` list.
    jku : dict
        ``iss`` -> allow-listed key-set URLs (never fetched).
    public_url : str
        The service's configured base URL (no trailing slash).
    """

    keys: dict[str, list[IssuerKey]]
    jku: dict[str, set[str]]
    public_url: str
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, authorization: str | None, audience: str, now: float | None = None) -> dict:
        """The verified claims of the call's ``Authorization`` header.

        Raises
        ------
        Unauthorized
            Naming the first problem found.
        """
        import jwt

        now = time.time() if now is None else now
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <JWT> signed by a trusted issuer "
                               "(CDS Hooks 2.0, Trusting CDS Clients)")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthorized(f"signature algorithm {_short(algorithm)} is not accepted; "
                               f"use one of {', '.join(ALGORITHMS)}")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.keys:
            raise Unauthorized(f"issuer {_short(issuer)} is not trusted by this service")
        if "jku" in header and header["jku"] not in self.jku.get(issuer, set()):
            raise Unauthorized(f"jku {_short(header['jku'])} is not on the issuer's allow-list "
                               "(the service fetches no keys; it uses the configured ones)")
        key = self._key(issuer, header.get("kid"))
        if key.algorithm not in (None, algorithm):
            raise Unauthorized(f"the token is signed with {algorithm}, but the issuer's key "
                               f"{_short(key.kid)} is for {key.algorithm}")
        try:
            claims = jwt.decode(token, key=key.public_key, algorithms=[algorithm],
                                audience=audience,
                                issuer=issuer, leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"the token's aud is not this service ({audience})") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"the token has no {error.claim!r} claim") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token's iat is in the future") from None
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError, ValueError):
            raise Unauthorized("the token's signature does not verify with the issuer's "
                               "keys") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the token is not valid ({type(error).__name__})") from None
        if not isinstance(claims["iat"], (int, float)) or claims["iat"] > now + CLOCK_SKEW_SECONDS:
            raise Unauthorized("the token's iat is in the future")
        if claims["exp"] > now + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
            raise Unauthorized(f"the token lives too long: exp may be at most "
                               f"{MAX_LIFETIME_SECONDS // 60} minutes ahead")
        self._remember(issuer, str(claims["jti"]), float(claims["exp"]), now)
        return claims

    def _key(self, issuer: str, kid: Any) -> "IssuerKey":
        keys = self.keys[issuer]
        if kid is not None:
            found = [key for key in keys if key.kid == kid]
        else:
            found = keys if len(keys) == 1 else []
        if not found:
            raise Unauthorized(f"no key {_short(kid)} in the issuer's configured key set"
                               if kid is not None else
                               "the token names no kid and the issuer has several keys")
        return found[0]

    def _remember(self, issuer: str, jti: str, expires: float, now: float) -> None:
        with self._lock:
            for seen, until in list(self._seen.items()):
                if until + CLOCK_SKEW_SECONDS < now:
                    del self._seen[seen]
            if (issuer, jti) in self._seen:
                raise Unauthorized("this token was already used (jti replayed); sign a new one "
                                   "for each call")
            if len(self._seen) >= MAX_REMEMBERED_TOKENS:
                raise Unauthorized("too many tokens in flight; retry in a minute")
            self._seen[(issuer, jti)] = expires


def public_url(value: str | None) -> str | None:
    """The configured base URL, checked (http or https, a host, no query or fragment)."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(f"{PUBLIC_URL_VARIABLE} must be the service's base URL, e.g. "
                                 f"https://cds.hospital.example (got {value!r})")
    return value.strip().rstrip("/")


def load_issuers(path: str | Path, base_url: str | None) -> TrustedIssuers:
    """Read the trusted issuers file (see the module docstring).

    Raises
    ------
    ConfigurationError
        The file cannot be read, is not the documented shape, holds a key PyJWT cannot use,
        or no public URL is configured (``aud`` could not be checked).
    """
    import jwt

    path = Path(path)
    where = f"{ISSUERS_VARIABLE} file {path}"
    if base_url is None:
        raise ConfigurationError(f"{where} is set, so CDS Hooks calls are authenticated, but "
                                 f"{PUBLIC_URL_VARIABLE} is not: set it to the service's base URL "
                                 "(the tokens' aud is checked against it)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as problem:
        raise ConfigurationError(f"cannot read the {where}: "
                                 f"{getattr(problem, 'strerror', None) or problem}") from None
    issuers = document.get("issuers") if isinstance(document, Mapping) else None
    if not isinstance(issuers, list) or not issuers:
        raise ConfigurationError(f"the {where} needs {{\"issuers\": [{{\"iss\": ..., \"jwks\": "
                                 "...}]}} with at least one issuer")
    keys: dict[str, list] = {}
    allowed: dict[str, set[str]] = {}
    for index, entry in enumerate(issuers):
        at = f"{where}, issuers[{index}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("iss"), str):
            raise ConfigurationError(f"{at}: needs an 'iss' string")
        key_set = entry.get("jwks")
        if key_set is None and isinstance(entry.get("jwks_file"), str):
            try:
                key_set = json.loads((path.parent / entry["jwks_file"]).read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as problem:
                raise ConfigurationError(f"{at}: cannot read jwks_file "
                                         f"{entry['jwks_file']!r} ({problem})") from None
        listed = key_set.get("keys") if isinstance(key_set, Mapping) else None
        if not isinstance(listed, list):
            raise ConfigurationError(f"{at}: 'jwks' must be a JWK Set ({{\"keys\": [...]}}) "
                                     "or 'jwks_file' name a file holding one")
        keys[entry["iss"]] = []
        for number, jwk in enumerate(listed):
            try:
                parsed = jwt.PyJWK.from_dict(jwk)
            except (jwt.PyJWTError, TypeError, AttributeError, KeyError, ValueError) as problem:
                raise ConfigurationError(f"{at}: key {number} of its JWK Set is not usable "
                                         f"({problem})") from None
            keys[entry["iss"]].append(IssuerKey(jwk.get("kid"), jwk.get("alg"), parsed.key))
        jku = entry.get("jku") or []
        if not isinstance(jku, list) or not all(isinstance(url, str) for url in jku):
            raise ConfigurationError(f"{at}: 'jku' must be a list of URLs")
        allowed[entry["iss"]] = set(jku)
    return TrustedIssuers(keys, allowed, base_url)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


#: ``app.extensions`` key of the CDS Hooks trusted issuers (None: the service is open).
CDS_ISSUERS = "cart_risk.cds_issuers"


def configure_cds_authentication(app) -> None:
    """Check ``PUBLIC_URL`` and load the trusted issuers of ``CDS_ISSUERS_FILE``; warn when the
    CDS Hooks service is open (no issuers configured).

    Raises
    ------
    model.errors.ConfigurationError
        A malformed public URL or issuers file, or issuers without a public URL.
    """
    app.config["PUBLIC_URL"] = public_url(app.config.get("PUBLIC_URL"))
    path = app.config.get("CDS_ISSUERS_FILE")
    if path:
        app.extensions[CDS_ISSUERS] = load_issuers(path, app.config["PUBLIC_URL"])
        return
    app.extensions[CDS_ISSUERS] = None
    app.logger.warning(
        "CDS Hooks calls are not authenticated: no trusted issuers are configured (%s); "
        "anyone who can reach /cds-services can have patient data rendered into cards. "
        "See docs/cds-hooks.md, Authentication.", ISSUERS_VARIABLE)
    if not app.config["PUBLIC_URL"]:
        app.logger.warning("%s is not set: CDS cards carry no links (they are never built "
                           "from the request's Host header)", PUBLIC_URL_VARIABLE)
