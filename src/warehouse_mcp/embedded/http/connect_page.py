"""The connect page: the browser form where the user types a source's credentials, so the agent never sees them.

A connect link (`/connect/<token>`) is a one-time token: only its sha256 is stored, with a CSRF token
bound to it, and it dies after CONNECT_LINK_TTL or on first successful use. The form is rendered on
the server from the source's wizard definition (no JS framework; a tiny nonce'd script only shows
and hides option sub-fields, and everything works with JavaScript off). A submit is checked exactly
like `store_credentials` (form rules, then the live source); a failure re-renders the form with the
message and the non-secret values, never a secret.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.domain import credentials
from warehouse_mcp.embedded.domain.credentials import ConnectBackend, LinkGone, connect_status, live_link
from warehouse_mcp.embedded.domain.errors import ErrorAnswer

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


def routes(backend: ConnectBackend) -> list[Route]:
    page = ConnectPage(backend)
    return [
        Route("/connect/{token}", page.form_endpoint, methods=["GET", "POST"]),
        Route("/connect/{token}/status", page.status_endpoint, methods=["GET"]),
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
            return _page("Form too large", "<p>The form was too large to accept.</p>", status=413)
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
            return _page(
                "Form check failed",
                "<p>This form could not be verified (its security token is missing or wrong), so nothing "
                "was saved. Open the link from your assistant again and resubmit.</p>",
                status=403,
            )
        source_type = link.source_type
        definition = registry.form(source_type) or {}
        submission = collect(definition.get("fields", []), posted)
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
        except ErrorAnswer as exc:
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


def collect(fields: Sequence[Mapping[str, Any]], posted: Mapping[str, str]) -> Submission:
    """Build the source config the wizard form describes from the posted inputs.

    Numbers become ints, checkboxes bools, switch-groups `{enabled, ...}`, SSH tunnels their nested
    shape; a select gives its value and its chosen option's sub-fields (the other options' are
    ignored). Blanks are left out: the form rules decide what is required.
    """
    submission = Submission()
    submission.config = _collect(fields, "", posted, submission)
    return submission


def _collect(
    fields: Sequence[Mapping[str, Any]],
    scope: str,
    posted: Mapping[str, str],
    out: Submission,
    *,
    in_chosen_option: bool = False,
) -> dict:
    config: dict[str, Any] = {}
    for spec in fields:
        name = str(spec.get("name", ""))
        if not name:
            continue
        key = scope + name
        kind = spec.get("type", "text")
        label = _label(spec)
        if kind == "select":
            chosen = _chosen_option(spec, key, posted)
            if chosen is None:
                if posted.get(_select_name(spec, key)):
                    out.errors.append(f"Choose one of the listed options for {label}.")
                continue
            # The chosen option's fields sit flat beside the select, as API payloads carry them (the
            # embedded connectors read them there; forms.validate_config accepts both shapes).
            config[name] = chosen["value"]
            option_fields = chosen.get("fields") or []
            config.update(
                _collect(option_fields, _option_scope(key, chosen), posted, out, in_chosen_option=True)
            )
        elif kind == "switch-group":
            enabled = f"{key}.enabled" in posted
            group = {"enabled": enabled}
            if enabled:
                group.update(_collect(spec.get("fields") or [], f"{key}.", posted, out))
            config[name] = group
        elif kind == "ssh-tunnel":
            config[name] = _collect_ssh(key, posted, out)
        elif kind == "oauth":
            # An OAuth field the user picked (or cannot avoid) is a dead end here: say so up front.
            if spec.get("required") or in_chosen_option:
                out.errors.append(f"{label}: {OAUTH_NOTE}")
        elif kind == "file-upload":
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


def _collect_input(spec: Mapping[str, Any], key: str, posted: Mapping[str, str], out: Submission) -> Any:
    raw = posted.get(key, "")
    if _is_secret(spec):
        out.secret_names.add(key)
        if raw:
            out.secret_values.append(raw)
        return raw or None
    value = raw.strip()
    if not value:
        return None
    if spec.get("type") == "number":
        try:
            return int(value)
        except ValueError:
            out.errors.append(f"{_label(spec)} must be a whole number.")
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


def _parse_key_file(spec: Mapping[str, Any], raw: str, out: Submission) -> dict[str, Any] | None:
    label = _label(spec)
    try:
        parsed = json.loads(raw)
    except ValueError:
        out.errors.append(f"{label} must be the contents of a JSON key file.")
        return None
    if not isinstance(parsed, dict):
        out.errors.append(f"{label} must be a JSON object (the whole key file).")
        return None
    keys = (spec.get("fileFormat") or {}).get("keys") or "*"
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


def _is_secret(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") in ("password", "file-upload") or bool(spec.get("secret"))


def _label(spec: Mapping[str, Any]) -> str:
    return str(spec.get("label") or spec.get("name") or "This field")


def _has_option_fields(spec: Mapping[str, Any]) -> bool:
    return any(option.get("fields") for option in spec.get("options") or [])


def _select_name(spec: Mapping[str, Any], key: str) -> str:
    return f"{key}.selection" if _has_option_fields(spec) else key


def _option_scope(key: str, option: Mapping[str, Any]) -> str:
    return f"{key}:{option.get('value')}."


def render_fields(
    fields: Sequence[Mapping[str, Any]], values: Mapping[str, str] | None = None, *, submitted: bool = False
) -> str:
    """The HTML inputs of a wizard form; `values` are posted inputs to show again (secrets never are)."""
    return _Renderer(values or {}, submitted).fields(fields, "")


def _chosen_option(spec: Mapping[str, Any], key: str, posted: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The option the user picked (or the default when the select was not posted at all)."""
    raw: Any = posted.get(_select_name(spec, key))
    if _has_option_fields(spec) and posted.get(key):
        raw = posted[key]  # a harness may post such a select under its bare name, as the config names it
    if raw is None or raw == "":
        raw = spec.get("defaultValue")
    if raw is None or raw == "":
        return None
    return next((o for o in spec.get("options") or [] if str(o.get("value")) == str(raw)), None)


class _Renderer:
    """Walks a wizard form and writes its HTML; `values` are re-shown inputs (never secrets)."""

    def __init__(self, values: Mapping[str, str], submitted: bool) -> None:
        self.values = values
        self.submitted = submitted
        self._ids: dict[str, int] = {}

    def new_id(self, name: str) -> str:
        base = "f-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
        count = self._ids.get(base, 0)
        self._ids[base] = count + 1
        return base if count == 0 else f"{base}-{count}"

    def fields(self, fields: Sequence[Mapping[str, Any]], scope: str) -> str:
        return "".join(self.field(spec, scope) for spec in fields if spec.get("name"))

    def field(self, spec: Mapping[str, Any], scope: str) -> str:
        kind = spec.get("type", "text")
        key = scope + str(spec["name"])
        if kind == "select":
            return self.select(spec, key)
        if kind == "switch-group":
            return self.switch_group(spec, key)
        if kind == "ssh-tunnel":
            return self.ssh_tunnel(spec, key)
        if kind == "oauth":
            return (
                f'<div class="field oauth"><p class="label">{_e(_label(spec))}</p>'
                f'<p class="note" role="note">{_e(OAUTH_NOTE)}</p></div>'
            )
        if kind == "file-upload":
            file_format = (spec.get("fileFormat") or {}).get("format") or ".json"
            caption = spec.get("caption") or f"Paste the contents of the {file_format} key file."
            return self.textarea(key, _label(spec), caption, required=bool(spec.get("required")), secret=True)
        if kind == "textarea":
            return self.textarea(
                key,
                _label(spec),
                spec.get("caption"),
                required=bool(spec.get("required")),
                secret=_is_secret(spec),
                placeholder=spec.get("placeholder"),
                default=spec.get("defaultValue"),
            )
        return self.input(spec, key)

    def input(self, spec: Mapping[str, Any], key: str) -> str:
        kind = spec.get("type", "text")
        secret = _is_secret(spec)
        html_type = "password" if secret else (kind if kind in INPUT_TYPES else "text")
        return self._input(
            key,
            _label(spec),
            html_type,
            caption=spec.get("caption"),
            placeholder=spec.get("placeholder"),
            required=bool(spec.get("required")),
            secret=secret,
            default=spec.get("defaultValue"),
        )

    def _input(
        self,
        key: str,
        label: str,
        html_type: str,
        *,
        caption: Any = None,
        placeholder: Any = None,
        required: bool = False,
        secret: bool = False,
        default: Any = None,
    ) -> str:
        element_id = self.new_id(key)
        attrs = [f'id="{element_id}"', f'name="{_e(key)}"', f'type="{html_type}"']
        if secret:
            attrs.append('autocomplete="off"')
        else:
            value = self._value(key, default)
            if value:
                attrs.append(f'value="{_e(value)}"')
            if html_type == "number":
                attrs.append('inputmode="numeric" step="1"')
        if placeholder:
            attrs.append(f'placeholder="{_e(placeholder)}"')
        if html_type in ("text", "password", "url", "email", "search"):
            attrs.append('spellcheck="false" autocapitalize="off"')
        attrs.extend(self._described(element_id, caption))
        if required:
            attrs.append('aria-required="true"')
        return (
            f'<div class="field">{self._label(element_id, label, required)}'
            f"<input {' '.join(attrs)}>{self._caption(element_id, caption)}</div>"
        )

    def textarea(
        self,
        key: str,
        label: str,
        caption: Any,
        *,
        required: bool,
        secret: bool,
        placeholder: Any = None,
        default: Any = None,
    ) -> str:
        element_id = self.new_id(key)
        attrs = [f'id="{element_id}"', f'name="{_e(key)}"', 'rows="6"', 'spellcheck="false"']
        if secret:
            attrs.append('autocomplete="off"')
        if placeholder:
            attrs.append(f'placeholder="{_e(placeholder)}"')
        attrs.extend(self._described(element_id, caption))
        if required:
            attrs.append('aria-required="true"')
        content = "" if secret else _e(self._value(key, default))
        return (
            f'<div class="field">{self._label(element_id, label, required)}'
            f"<textarea {' '.join(attrs)}>{content}</textarea>{self._caption(element_id, caption)}</div>"
        )

    def select(self, spec: Mapping[str, Any], key: str) -> str:
        options = list(spec.get("options") or [])
        name = _select_name(spec, key)
        element_id = self.new_id(name)
        default = spec.get("defaultValue")
        if default is None and options and spec.get("required"):
            default = options[0].get("value")
        current = self._value(name, default)
        choices = [] if spec.get("required") else ['<option value="">Not set</option>']
        for option in options:
            value = str(option.get("value", ""))
            selected = " selected" if value == current else ""
            choices.append(
                f'<option value="{_e(value)}"{selected}>{_e(option.get("label") or value)}</option>'
            )
        required = bool(spec.get("required"))
        attrs = [
            f'id="{element_id}"',
            f'name="{_e(name)}"',
            *self._described(element_id, spec.get("caption")),
        ]
        if required:
            attrs.append('aria-required="true"')
        parts = [
            f'<div class="field">{self._label(element_id, _label(spec), required)}'
            f"<select {' '.join(attrs)}>{''.join(choices)}</select>{self._caption(element_id, spec.get('caption'))}"
        ]
        for option in options:
            sub_fields = option.get("fields") or []
            if not sub_fields:
                continue
            parts.append(
                f'<fieldset class="option" data-select="{element_id}" data-value="{_e(option.get("value", ""))}">'
                f"<legend>{_e(option.get('label') or option.get('value'))}</legend>"
                f"{self.fields(sub_fields, _option_scope(key, option))}</fieldset>"
            )
        parts.append("</div>")
        return "".join(parts)

    def switch_group(self, spec: Mapping[str, Any], key: str) -> str:
        checkbox, checkbox_id = self.checkbox(
            f"{key}.enabled", _label(spec), bool(spec.get("default")), spec.get("caption")
        )
        children = spec.get("fields") or []
        if not children:
            return f'<div class="field">{checkbox}</div>'
        inner = self.fields(children, f"{key}.")
        return (
            f'<div class="group" role="group" aria-labelledby="{checkbox_id}-label">{checkbox}'
            f'<div class="children" data-switch-for="{checkbox_id}">{inner}</div></div>'
        )

    def checkbox(self, name: str, label: str, default: bool, caption: Any = None) -> tuple[str, str]:
        element_id = self.new_id(name)
        checked = (name in self.values) if self.submitted else default
        attrs = [f'id="{element_id}"', f'name="{_e(name)}"', 'type="checkbox"', 'value="on"']
        if checked:
            attrs.append("checked")
        attrs.extend(self._described(element_id, caption))
        markup = (
            f'<div class="check"><input {" ".join(attrs)}>'
            f'<label id="{element_id}-label" for="{element_id}">{_e(label)}</label></div>'
            f"{self._caption(element_id, caption)}"
        )
        return markup, element_id

    def ssh_tunnel(self, spec: Mapping[str, Any], key: str) -> str:
        label = str(spec.get("label") or "SSH tunnel")
        enabled, enabled_id = self.checkbox(f"{key}.enabled", "Connect through an SSH tunnel", False)
        auth_name = f"{key}.auth.selection"
        auth_id = self.new_id(auth_name)
        current = self._value(auth_name, "password")
        choices = "".join(
            f'<option value="{value}"{" selected" if value == current else ""}>{text}</option>'
            for value, text in SSH_AUTH_OPTIONS
        )
        password_group = self._input(f"{key}.auth.password.password", "SSH password", "password", secret=True)
        keypair_group = self.textarea(
            f"{key}.auth.keypair.private_key",
            "Private key",
            "Paste the whole private key (OpenSSH or PEM), with its BEGIN and END lines.",
            required=False,
            secret=True,
        ) + self._input(
            f"{key}.auth.keypair.passphrase", "Key passphrase (optional)", "password", secret=True
        )
        require_tls, _ = self.checkbox(f"{key}.require_tls.enabled", "Require TLS through the tunnel", False)
        fingerprint = self._input(
            f"{key}.host_key_fingerprint",
            "SSH host key fingerprint (optional)",
            "text",
            placeholder="SHA256:...",
            caption="Pins the SSH server's key (ssh-keygen -lf its .pub file prints it). "
            "Empty: the key seen on the first connection is trusted and stored.",
        )
        return (
            f'<fieldset class="group"><legend>{_e(label)}</legend>{enabled}'
            f'<div class="children" data-switch-for="{enabled_id}">'
            f"{self._input(f'{key}.host', 'SSH host', 'text')}"
            f"{self._input(f'{key}.port', 'SSH port', 'number', default=SSH_DEFAULT_PORT)}"
            f"{fingerprint}"
            f'<div class="field">{self._label(auth_id, "Authentication", False)}'
            f'<select id="{auth_id}" name="{_e(auth_name)}">{choices}</select></div>'
            f"{self._input(f'{key}.auth.username', 'SSH username', 'text')}"
            f'<fieldset class="option" data-select="{auth_id}" data-value="password"><legend>Password</legend>'
            f"{password_group}</fieldset>"
            f'<fieldset class="option" data-select="{auth_id}" data-value="keypair"><legend>Key pair</legend>'
            f"{keypair_group}</fieldset>{require_tls}</div></fieldset>"
        )

    def _value(self, key: str, default: Any) -> str:
        if self.submitted:
            return self.values.get(key, "")
        return "" if default is None else str(default)

    @staticmethod
    def _label(element_id: str, label: str, required: bool) -> str:
        marker = '<span class="required" aria-hidden="true"> *</span>' if required else ""
        return f'<label for="{element_id}">{_e(label)}{marker}</label>'

    @staticmethod
    def _described(element_id: str, caption: Any) -> list[str]:
        return [f'aria-describedby="{element_id}-caption"'] if caption else []

    @staticmethod
    def _caption(element_id: str, caption: Any) -> str:
        return f'<p class="caption" id="{element_id}-caption">{_e(caption)}</p>' if caption else ""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# --- pages ------------------------------------------------------------------------------------------

_STYLE = """
:root { color-scheme: light dark; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; padding: 2rem 1rem; line-height: 1.5; }
main { max-width: 40rem; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
.lead { margin-top: 0; opacity: .85; }
.field { margin: 0 0 1rem; }
label, .label { display: block; font-weight: 600; margin-bottom: .25rem; }
.check { display: flex; gap: .5rem; align-items: center; margin-bottom: .5rem; }
.check label { margin: 0; }
input:not([type=checkbox]), select, textarea { box-sizing: border-box; width: 100%; padding: .5rem;
  font: inherit; border: 1px solid #8a8a8a; border-radius: 4px; }
textarea { font-family: ui-monospace, monospace; }
:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
fieldset, .group { border: 1px solid #8a8a8a; border-radius: 6px; margin: 0 0 1rem; padding: .75rem 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
.caption, .note { font-size: .9rem; margin: .25rem 0 0; opacity: .85; }
.note { border-left: 4px solid #b45309; padding-left: .5rem; opacity: 1; }
.required { color: #b91c1c; }
.error { border: 2px solid #b91c1c; border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1rem; }
.ok { border: 2px solid #15803d; border-radius: 6px; padding: .75rem 1rem; }
button { font: inherit; font-weight: 600; padding: .6rem 1.4rem; border-radius: 6px; border: 0;
  background: #1d4ed8; color: #fff; cursor: pointer; }
code { font-family: ui-monospace, monospace; word-break: break-all; }
[hidden] { display: none !important; }
"""

# Shows only the chosen option's sub-fields and an enabled group's children; without it, all are shown.
_SCRIPT = """
(function () {
  function sync() {
    document.querySelectorAll("[data-select]").forEach(function (group) {
      var select = document.getElementById(group.dataset.select);
      group.hidden = !!select && select.value !== group.dataset.value;
    });
    document.querySelectorAll("[data-switch-for]").forEach(function (group) {
      var box = document.getElementById(group.dataset.switchFor);
      group.hidden = !!box && !box.checked;
    });
  }
  document.addEventListener("change", sync);
  sync();
})();
"""


def _security_headers(nonce: str | None) -> dict[str, str]:
    script = f"script-src 'nonce-{nonce}'" if nonce else "script-src 'none'"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; {script}; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


def _page(title: str, body: str, *, status: int, script: bool = False) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16) if script else None
    script_tag = f'<script nonce="{nonce}">{_SCRIPT}</script>' if nonce else ""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)} · warehouse-mcp</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main>{script_tag}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_security_headers(nonce))


def _expired_page() -> HTMLResponse:
    return _page("Link expired", f"<h1>Link expired</h1><p>{_e(EXPIRED_MESSAGE)}</p>", status=410)


def _host_key(config: Mapping[str, Any]) -> str | None:
    tunnel = config.get("ssh_tunnel")
    if isinstance(tunnel, Mapping) and tunnel.get("enabled") and tunnel.get("host_key_fingerprint"):
        return str(tunnel["host_key_fingerprint"])
    return None


def _success_page(source_type: str, credential_id: str, host_key: str | None = None) -> HTMLResponse:
    definition = registry.form(source_type) or {}
    label = definition.get("label") or source_type
    trusted = (
        f"<p>SSH host key: <code>{_e(host_key)}</code> (stored with the source: a server showing another "
        "key is refused)</p>"
        if host_key
        else ""
    )
    body = (
        f'<h1>{_e(label)} connected</h1><div class="ok" role="status"><p>{_e(SUCCESS_MESSAGE)}</p>'
        f"<p>Credential id: <code>{_e(credential_id)}</code></p>{trusted}</div>"
        "<p>The credentials were checked against the source and stored encrypted on this machine for 24 "
        "hours, until your assistant uses them. You can close this tab.</p>"
    )
    return _page(f"{label} connected", body, status=200)


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
    parts = [f"<h1>Connect {_e(label)}</h1>"]
    if definition.get("caption"):
        parts.append(f'<p class="lead">{_e(definition["caption"])}</p>')
    parts.append(
        "<p>Your credentials are checked against the source and stored encrypted on this machine. "
        "They are never shown to your assistant.</p>"
    )
    docs = definition.get("docsUrl")
    if isinstance(docs, str) and docs.startswith("https://"):
        parts.append(f'<p><a href="{_e(docs)}" rel="noopener noreferrer" target="_blank">Setup guide</a></p>')
    if error:
        parts.append(
            f'<div class="error" role="alert"><p><strong>Could not connect.</strong> {_e(error)}</p>'
            "<p>Passwords and keys were not kept: enter them again.</p></div>"
        )
    parts.append(
        '<form method="post" autocomplete="off" novalidate>'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{_e(csrf_token)}">'
        f"{render_fields(definition.get('fields') or [], values, submitted=submitted)}"
        '<button type="submit">Connect</button></form>'
    )
    return _page(f"Connect {label}", "".join(parts), status=status, script=True)
