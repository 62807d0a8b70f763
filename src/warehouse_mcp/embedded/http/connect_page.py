"""The connect page: the browser form where the user types a source's credentials, so the agent never sees them.

A connect link (`/connect/<token>`) is a one-time token: only its sha256 is stored, with a CSRF token
bound to it, and it dies after CONNECT_LINK_TTL or on first successful use. The form is rendered on
the server from the source's wizard definition with the Jinja2 templates in `templates/connect/`
(autoescaped; no JS framework: a tiny script, `static/connect.js`, loaded with a per-page nonce, only shows
and hides option sub-fields, and everything works with JavaScript off). A submit is checked exactly
like `store_credentials` (form rules, then the live source); a failure re-renders the form with the
message and the non-secret values, never a secret.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from warehouse_mcp.embedded.connectors import form_fields, forms, registry
from warehouse_mcp.embedded.connectors.form_fields import FormField
from warehouse_mcp.embedded.domain import credentials
from warehouse_mcp.embedded.domain.credentials import ConnectBackend, LinkGone, connect_status, live_link
from warehouse_mcp.embedded.domain.errors import DomainError

if TYPE_CHECKING:
    from jinja2 import Environment

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 1_000_000  # a pasted JSON key file is a few KB
MAX_FIELDS = 2000
CSRF_FIELD = "csrf_token"

EXPIRED_MESSAGE = "This link has expired or was already used. Ask your assistant for a new link."
SUCCESS_MESSAGE = "Connected. Return to your assistant and tell it you are done."
OAUTH_NOTE = (
    "OAuth connections need a PostHog backend: this local server cannot complete an OAuth sign-in. "
    "Choose another way to connect if the form offers one, or connect this source in PostHog "
    "(set POSTHOG_PERSONAL_API_KEY for warehouse-mcp)."
)

INPUT_TYPES = {"text", "email", "search", "url", "password", "time", "number"}
SSH_AUTH_OPTIONS = (("password", "Password"), ("keypair", "Key pair"))
SSH_DEFAULT_PORT = 22


# --- HTTP ------------------------------------------------------------------------------------------


def routes(backend: ConnectBackend) -> list[BaseRoute]:
    page = ConnectPage(backend)
    return [
        Route("/connect/{token}", page.form_endpoint, methods=["GET", "POST"]),
        Route("/connect/{token}/status", page.status_endpoint, methods=["GET"]),
        *static_routes(),
    ]


class ConnectPage:
    def __init__(self, backend: ConnectBackend) -> None:
        self.backend = backend

    async def form_endpoint(self, request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":
            return await run_in_threadpool(self.show, token)
        posted = await _read_form(request)
        if posted is None:
            return _message_page("Form too large", ["The form was too large to accept."], status=413)
        return await run_in_threadpool(self.submit, token, posted)

    async def status_endpoint(self, request: Request) -> Response:
        state = await run_in_threadpool(connect_status, self.backend.store, request.path_params["token"])
        return JSONResponse(state, headers=_security_headers(None))

    def show(self, token: str) -> Response:
        link = live_link(self.backend.store, token)
        if link is None:
            return _expired_page()
        return _form_page(
            link.source_type, link.csrf_token, values={}, submitted=False, error=None, status=200
        )

    def submit(self, token: str, posted: dict[str, str]) -> Response:
        link = live_link(self.backend.store, token)
        if link is None:
            return _expired_page()
        if not hmac.compare_digest(posted.get(CSRF_FIELD, "").encode(), link.csrf_token.encode()):
            logger.warning("connect page: rejected a submit with a missing or wrong CSRF token")
            return _message_page(
                "Form check failed",
                [
                    "This form could not be verified (its security token is missing or wrong), so nothing "
                    "was saved. Open the link from your assistant again and resubmit."
                ],
                status=403,
            )
        source_type = link.source_type
        submission = collect(form_fields.form_fields(source_type), posted)
        safe_values = {
            k: v for k, v in posted.items() if k not in submission.secret_names and k != CSRF_FIELD
        }

        def again(message: str) -> Response:
            return _form_page(
                source_type,
                link.csrf_token,
                values=safe_values,
                submitted=True,
                error=_scrub(
                    message, [*submission.secret_values, *forms.secret_values(source_type, submission.config)]
                ),
                status=400,
            )

        if submission.errors:
            return again(" ".join(submission.errors))
        try:
            config = credentials.check_credential(source_type, submission.config)
        except DomainError as exc:
            return again(str(exc))
        try:
            metadata = credentials.complete_link(self.backend.store, self.backend.vault, link, config)
        except LinkGone:
            return _expired_page()
        logger.info("connect page: stored credential %s for %s", metadata["credential_id"], source_type)
        return _success_page(source_type, metadata["credential_id"], _host_key(config))


async def _read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded body as {name: first value}; None when larger than MAX_FORM_BYTES or MAX_FIELDS."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        parsed = parse_qs(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS
        )
    except ValueError:  # more than MAX_FIELDS fields: not our form
        return None
    return {key: values[0] for key, values in parsed.items()}


# --- from posted fields to a config ------------------------------------------------------------------


@dataclass
class Submission:
    config: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    secret_names: set[str] = field(default_factory=set)  # form input names holding secrets
    secret_values: list[str] = field(default_factory=list)


def collect(
    fields: Sequence[Mapping[str, Any]] | Sequence[FormField], posted: Mapping[str, str]
) -> Submission:
    """Build the source config the wizard form describes from the posted inputs.

    Numbers become ints, checkboxes bools, switch-groups `{enabled, ...}`, SSH tunnels their nested
    shape; a select gives its value and its chosen option's sub-fields (the other options' are
    ignored). Blanks are left out: the form rules decide what is required.
    """
    submission = Submission()
    submission.config = _collect(_typed(fields), "", posted, submission)
    return submission


def _collect(
    fields: Sequence[FormField],
    scope: str,
    posted: Mapping[str, str],
    out: Submission,
    *,
    in_chosen_option: bool = False,
) -> dict:
    config: dict[str, Any] = {}
    for spec in fields:
        name = spec.name
        if not name:
            continue
        key = scope + name
        label = spec.display_label
        if isinstance(spec, form_fields.SelectField):
            chosen = _chosen_option(spec, key, posted)
            if chosen is None:
                if posted.get(_select_name(spec, key)):
                    out.errors.append(f"Choose one of the listed options for {label}.")
                continue
            # The chosen option's fields sit flat beside the select, as API payloads carry them (the
            # embedded connectors read them there; forms.validate_config accepts both shapes).
            config[name] = chosen.value
            config.update(
                _collect(chosen.fields, _option_scope(key, chosen), posted, out, in_chosen_option=True)
            )
        elif isinstance(spec, form_fields.SwitchGroupField):
            enabled = f"{key}.enabled" in posted
            group = {"enabled": enabled}
            if enabled:
                group.update(_collect(spec.fields, f"{key}.", posted, out))
            config[name] = group
        elif isinstance(spec, form_fields.SshTunnelField):
            config[name] = _collect_ssh(key, posted, out)
        elif isinstance(spec, form_fields.OAuthField):
            # An OAuth field the user picked (or cannot avoid) is a dead end here: say so up front.
            if spec.required or in_chosen_option:
                out.errors.append(f"{label}: {OAUTH_NOTE}")
        elif isinstance(spec, form_fields.FileUploadField):
            out.secret_names.add(key)
            raw = posted.get(key, "")
            if raw.strip():
                out.secret_values.append(raw)
                parsed = _parse_key_file(spec, raw, out)
                if parsed is not None:
                    config[name] = parsed
        else:
            value = _collect_input(spec, key, posted, out)
            if value is not None:
                config[name] = value
    return config


def _collect_input(spec: FormField, key: str, posted: Mapping[str, str], out: Submission) -> Any:
    raw = posted.get(key, "")
    if spec.is_secret:
        out.secret_names.add(key)
        if raw:
            out.secret_values.append(raw)
        return raw or None
    value = raw.strip()
    if not value:
        return None
    if spec.type == "number":
        try:
            return int(value)
        except ValueError:
            out.errors.append(f"{spec.display_label} must be a whole number.")
            return None
    return value


def _collect_ssh(key: str, posted: Mapping[str, str], out: Submission) -> dict[str, Any]:
    if f"{key}.enabled" not in posted:
        return {"enabled": False}
    tunnel: dict[str, Any] = {"enabled": True}
    host = posted.get(f"{key}.host", "").strip()
    if host:
        tunnel["host"] = host
    port = posted.get(f"{key}.port", "").strip()
    try:
        tunnel["port"] = int(port) if port else SSH_DEFAULT_PORT
    except ValueError:
        out.errors.append("SSH tunnel port must be a whole number.")
    selection = posted.get(f"{key}.auth.selection", "password")
    if selection not in dict(SSH_AUTH_OPTIONS):
        out.errors.append("Choose password or key pair for the SSH tunnel authentication.")
        selection = "password"
    auth: dict[str, Any] = {"selection": selection}
    username = posted.get(f"{key}.auth.username", "").strip()
    if username:
        auth["username"] = username
    chosen_secrets = ("password",) if selection == "password" else ("private_key", "passphrase")
    for option, _ in SSH_AUTH_OPTIONS:
        for secret_key in ("password", "private_key", "passphrase"):
            input_name = f"{key}.auth.{option}.{secret_key}"
            out.secret_names.add(input_name)
            value = posted.get(input_name, "")
            if option == selection and secret_key in chosen_secrets and value:
                out.secret_values.append(value)
                auth[secret_key] = value
    tunnel["auth"] = auth
    tunnel["require_tls"] = {"enabled": f"{key}.require_tls.enabled" in posted}
    fingerprint = posted.get(f"{key}.host_key_fingerprint", "").strip()
    if fingerprint:
        tunnel["host_key_fingerprint"] = fingerprint
    return tunnel


def _parse_key_file(spec: form_fields.FileUploadField, raw: str, out: Submission) -> dict[str, Any] | None:
    label = spec.display_label
    try:
        parsed = json.loads(raw)
    except ValueError:
        out.errors.append(f"{label} must be the contents of a JSON key file.")
        return None
    if not isinstance(parsed, dict):
        out.errors.append(f"{label} must be a JSON object (the whole key file).")
        return None
    keys = (spec.fileFormat.keys if spec.fileFormat else None) or "*"
    if keys == "*" or keys == ["*"]:
        return parsed
    missing = [k for k in keys if k not in parsed]
    if missing:
        out.errors.append(f"{label} is missing: {', '.join(missing)}.")
        return None
    return {k: parsed[k] for k in keys}


def _scrub(message: str, secret_values: Sequence[str]) -> str:
    """Belt and braces: a source's message must hold no secret, but never echo one even if it did."""
    for value in sorted(secret_values, key=len, reverse=True):
        if len(value) >= 4:
            message = message.replace(value, "[hidden]")
    return message


# --- rendering --------------------------------------------------------------------------------------


def _select_name(spec: form_fields.SelectField, key: str) -> str:
    return f"{key}.selection" if spec.has_option_fields else key


def _option_scope(key: str, option: form_fields.Option) -> str:
    return f"{key}:{option.value}."


def render_fields(
    fields: Sequence[Mapping[str, Any]] | Sequence[FormField],
    values: Mapping[str, str] | None = None,
    *,
    submitted: bool = False,
) -> str:
    """The HTML inputs of a wizard form; `values` are posted inputs to show again (secrets never are)."""
    template = _templates().get_template("connect/fields_only.html")
    return template.render(renderer=FieldRenderer(values or {}, submitted), form_fields=_typed(fields))


def _typed(fields: Sequence[Mapping[str, Any]] | Sequence[FormField]) -> tuple[FormField, ...]:
    if all(isinstance(field, Mapping) for field in fields):
        return form_fields.parse_fields(fields)  # type: ignore[arg-type]
    return tuple(fields)  # type: ignore[arg-type]


def _chosen_option(
    spec: form_fields.SelectField, key: str, posted: Mapping[str, str]
) -> form_fields.Option | None:
    """The option the user picked (or the default when the select was not posted at all)."""
    raw: Any = posted.get(_select_name(spec, key))
    if spec.has_option_fields and posted.get(key):
        raw = posted[key]  # a harness may post such a select under its bare name, as the config names it
    if raw is None or raw == "":
        raw = spec.defaultValue
    if raw is None or raw == "":
        return None
    return next((option for option in spec.options if str(option.value) == str(raw)), None)


class FieldRenderer:
    """What templates/connect/fields.html asks while it walks a wizard form: element ids, the values to show
    again (never secrets: the template leaves secret inputs empty) and what a field's definition says."""

    input_types = INPUT_TYPES
    ssh_auth_options = SSH_AUTH_OPTIONS
    ssh_default_port = SSH_DEFAULT_PORT
    oauth_note = OAUTH_NOTE

    def __init__(self, values: Mapping[str, str], submitted: bool) -> None:
        self.values = values
        self.submitted = submitted
        self._ids: dict[str, int] = {}

    def new_id(self, name: str) -> str:
        base = "f-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
        count = self._ids.get(base, 0)
        self._ids[base] = count + 1
        return base if count == 0 else f"{base}-{count}"

    def value(self, key: str, default: Any) -> str:
        if self.submitted:
            return self.values.get(key, "")
        return "" if default is None else str(default)

    def checked(self, name: str, default: Any) -> bool:
        return (name in self.values) if self.submitted else bool(default)

    @staticmethod
    def select_default(spec: form_fields.SelectField) -> Any:
        if spec.defaultValue is None and spec.options and spec.required:
            return spec.options[0].value
        return spec.defaultValue

    select_name = staticmethod(_select_name)
    option_scope = staticmethod(_option_scope)


# --- pages ------------------------------------------------------------------------------------------


@cache
def _templates() -> Environment:
    """The page templates; Jinja2 is loaded on the first page, not when the app is built (listing tools
    stays light). Autoescaping: every value a template shows is escaped; nothing is marked safe by hand."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("warehouse_mcp.embedded.http", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )


STATIC_URL = "/static/connect"


def static_routes() -> list[BaseRoute]:
    """The connect page's stylesheet and script (a strict CSP allows only these, and no inline code)."""
    return [Mount(STATIC_URL, StaticFiles(packages=[("warehouse_mcp.embedded.http", "static")]))]


def _security_headers(nonce: str | None) -> dict[str, str]:
    script = f"script-src 'nonce-{nonce}'" if nonce else "script-src 'none'"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'self'; {script}; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


def _render(template: str, *, title: str, status: int, script: bool = False, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16) if script else None
    document = (
        _templates().get_template(template).render(title=title, nonce=nonce, static_url=STATIC_URL, **context)
    )
    return HTMLResponse(document, status_code=status, headers=_security_headers(nonce))


def _message_page(
    title: str, paragraphs: list[str], *, status: int, heading: str | None = None
) -> HTMLResponse:
    return _render("connect/message.html", title=title, status=status, heading=heading, paragraphs=paragraphs)


def _expired_page() -> HTMLResponse:
    return _message_page("Link expired", [EXPIRED_MESSAGE], status=410, heading="Link expired")


def _host_key(config: Mapping[str, Any]) -> str | None:
    tunnel = config.get("ssh_tunnel")
    if isinstance(tunnel, Mapping) and tunnel.get("enabled") and tunnel.get("host_key_fingerprint"):
        return str(tunnel["host_key_fingerprint"])
    return None


def _success_page(source_type: str, credential_id: str, host_key: str | None = None) -> HTMLResponse:
    label = (registry.form(source_type) or {}).get("label") or source_type
    return _render(
        "connect/success.html",
        title=f"{label} connected",
        status=200,
        label=label,
        message=SUCCESS_MESSAGE,
        credential_id=credential_id,
        host_key=host_key,
    )


def _form_page(
    source_type: str,
    csrf_token: str,
    *,
    values: Mapping[str, str],
    submitted: bool,
    error: str | None,
    status: int,
) -> HTMLResponse:
    definition = registry.form(source_type) or {}
    label = str(definition.get("label") or source_type)
    docs = definition.get("docsUrl")
    return _render(
        "connect/form.html",
        title=f"Connect {label}",
        status=status,
        script=True,
        label=label,
        caption=definition.get("caption"),
        docs_url=docs if isinstance(docs, str) and docs.startswith("https://") else None,
        error=error,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token,
        renderer=FieldRenderer(values, submitted),
        form_fields=form_fields.form_fields(source_type),
    )
