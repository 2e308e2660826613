"""API address rules: from what the user typed to the exact URLs we call.

The rules follow Cherry Studio's, with its `#` bug fixed:

* trim, then drop one trailing ``/``;
* a trailing ``#`` means "this is the full endpoint": drop the ``#`` and call
  the address verbatim (Cherry removes the ``#`` before honouring it);
* a path that already holds a version segment (``/v1``, ``/v1beta``, ``/v2``,
  ``/api/v3``...) is kept as the base;
* otherwise ``/v1`` is appended (Gemini: ``/v1beta``).

One kindness beyond Cherry: an OpenAI-type address that already ends in
``/chat/completions`` is taken as the full endpoint, since that is what the
person meant and appending more could only give a 404.

Every function here is pure and raises :class:`AddressError` (a ValueError)
for an address that cannot work; adapters turn it into ProviderUnavailable.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

from .base import Endpoints

DEFAULT_ADDRESSES = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
AZURE_API_VERSION = "2024-10-21"

# A path segment like v1, v1beta, v2alpha1, v3.
_VERSION_SEGMENT = re.compile(r"^v\d+([a-z]+\d*)?$")


class AddressError(ValueError):
    """An API address that cannot be turned into a URL; the text is the hint."""


def normalise(address: str) -> tuple[str, bool]:
    """(cleaned address, verbatim?) after trimming, one `/` dropped and a `#` honoured."""
    text = address.strip()
    if text.endswith("/"):
        text = text[:-1]
    verbatim = text.endswith("#")
    if verbatim:
        text = text[:-1]
    if not text:
        return "", verbatim
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AddressError(
            f"the API address {text!r} is not an http:// or https:// URL; "
            "write it in full, e.g. http://localhost:8000"
        )
    return text, verbatim


def has_version(url: str) -> bool:
    """Whether the URL's path already holds a version segment (/v1, /v1beta, /api/v3...)."""
    return any(_VERSION_SEGMENT.match(seg) for seg in urlsplit(url).path.split("/"))


def _base(address: str, default: str | None, version: str) -> tuple[str, bool]:
    text, verbatim = normalise(address)
    if not text:
        if default is None:
            raise AddressError("no API address is set")
        text = default
    if verbatim or has_version(text):
        return text, verbatim
    return f"{text}/{version}", False


def _sibling(url: str, tail: str, replacement: str) -> str | None:
    """For a `#` endpoint: the models URL next to it, when its path allows."""
    parts = urlsplit(url)
    if not parts.path.endswith(tail):
        return None
    return urlunsplit(parts._replace(path=parts.path[: -len(tail)] + replacement))


def openai_endpoints(address: str) -> Endpoints:
    base, verbatim = _base(address, DEFAULT_ADDRESSES["openai"], "v1")
    if verbatim:
        return Endpoints(chat=base, models=_sibling(base, "/chat/completions", "/models"))
    if urlsplit(base).path.endswith("/chat/completions"):
        return Endpoints(chat=base, models=_sibling(base, "/chat/completions", "/models"))
    return Endpoints(chat=f"{base}/chat/completions", models=f"{base}/models")


def anthropic_endpoints(address: str) -> Endpoints:
    base, verbatim = _base(address, DEFAULT_ADDRESSES["anthropic"], "v1")
    if verbatim:
        return Endpoints(chat=base, models=_sibling(base, "/messages", "/models"))
    return Endpoints(chat=f"{base}/messages", models=f"{base}/models")


def gemini_model_path(model: str | None) -> str:
    """`models/gemini-2.0-flash` and `gemini-2.0-flash` both name the same model."""
    if not model:
        return "{model}"
    name = model[len("models/") :] if model.startswith("models/") else model
    return quote(name, safe="-._~")


def gemini_endpoints(address: str, model: str | None) -> Endpoints:
    base, verbatim = _base(address, DEFAULT_ADDRESSES["gemini"], "v1beta")
    if verbatim:
        # A verbatim Gemini endpoint may carry `{model}` for the model id.
        chat = base.replace("{model}", gemini_model_path(model)) if model else base
        cut = base.find("/models/")
        return Endpoints(chat=chat, models=base[: cut + len("/models")] if cut >= 0 else None)
    return Endpoints(
        chat=f"{base}/models/{gemini_model_path(model)}:streamGenerateContent?alt=sse",
        models=f"{base}/models",
    )


def azure_endpoints(address: str, deployment: str | None, api_version: str | None) -> Endpoints:
    """Azure OpenAI: the resource endpoint plus the deployment (the "model" the user added).

    An address ending in ``/openai/v1`` selects the newer v1 surface, where the
    deployment goes in the body as ``model`` and no api-version is needed.
    Listing deployments is not part of the data-plane API, so ``models`` is None.
    """
    text, verbatim = normalise(address)
    if not text:
        raise AddressError(
            "Azure OpenAI has no default API address; set it to your resource's "
            "endpoint, e.g. https://NAME.openai.azure.com"
        )
    if verbatim:
        return Endpoints(chat=text, models=None)
    if text.endswith("/openai/v1"):
        return Endpoints(chat=f"{text}/chat/completions", models=None)
    for tail in ("/openai", "/v1"):
        if text.endswith(tail):
            text = text[: -len(tail)]
            break
    name = quote(deployment, safe="-._~") if deployment else "{deployment}"
    version = quote(api_version or AZURE_API_VERSION, safe="-._~")
    return Endpoints(
        chat=f"{text}/openai/deployments/{name}/chat/completions?api-version={version}",
        models=None,
    )


def without_query(url: str) -> str:
    """A URL fit for an error message: no query string, no user:password@."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else url.split("?")[0]
