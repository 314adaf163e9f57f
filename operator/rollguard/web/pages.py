"""The dashboard's pages other than a decision's: the layout every page shares, the list of
ModelDeployments, the page after an approval, and the error pages (a refusal names the missing
permission). PURE: dicts and values in, HTML out, every value escaped. Called by
``rollguard.web.server`` and ``rollguard.web.decision_page``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2937;color:#fff;padding:10px 24px;display:flex;justify-content:space-between}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px 24px;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 16px;background:#fff}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 16px;margin:12px 0}
.note{background:#fff8e1;border:1px solid #ffe082;padding:8px 12px;border-radius:4px}
.bad{color:#b71c1c;font-weight:600}.good{color:#1b5e20;font-weight:600}
.phase{display:inline-block;padding:1px 8px;border-radius:10px;background:#e3f2fd}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #eee}
form.approval{display:inline-block;margin-right:16px}
textarea{width:28em;height:3em}
code{background:#f3f3f3;padding:0 3px}
"""

# Sent with every page: nothing but inline styles, no scripts, no requests anywhere, forms
# posted back to the dashboard only, never framed.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def decision_path(namespace: str, name: str) -> str:
    """The page of one RollbackDecision: the path notifications link to."""
    return f"/decisions/{quote(namespace, safe='')}/{quote(name, safe='')}"


def text(value: object) -> str:
    """A value for the page: escaped, empty for None."""
    return "" if value is None else escape(str(value))


def layout(title: str, body: str, *, user: str) -> str:
    """A whole page."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{text(title)} · rollguard</title><style>{STYLE}</style></head><body>"
        f'<header><a href="/">rollguard dashboard</a><span>signed in as '
        f'<strong id="user">{text(user)}</strong></span></header>'
        f"<main><h1>{text(title)}</h1>{body}</main></body></html>"
    )


def table(headings: Sequence[str], rows: Sequence[Sequence[str]], *, id_: str = "") -> str:
    """A table; the cells are HTML already (escape them first)."""
    ident = f' id="{text(id_)}"' if id_ else ""
    head = "".join(f"<th>{text(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mdep_row(obj: dict[str, Any]) -> list[str]:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ns = meta.get("namespace", "")
    target = status.get("target") or (
        f"Deployment/{(spec.get('deploymentRef') or {}).get('name', '')}"
        if spec.get("deploymentRef")
        else f"{(spec.get('targetRef') or {}).get('kind', '')}/{(spec.get('targetRef') or {}).get('name', '')}"
    )
    score = (status.get("lastEvaluation") or {}).get("scoreText") or ""
    last = status.get("lastDecision")
    link = f'<a href="{text(decision_path(ns, last))}">{text(last)}</a>' if last else "—"
    return [
        text(ns),
        text(meta.get("name")),
        text(target),
        f'<span class="phase">{text(status.get("phase") or "New")}</span>',
        text(score),
        link,
    ]


def list_page(
    items: Sequence[dict[str, Any]], *, namespaces: Sequence[str] | None, user: str
) -> str:
    """The ModelDeployments the user may read; ``namespaces`` None: listed cluster-wide, else
    the namespaces they were listed in because the user may not list all."""
    if namespaces is None:
        scope = "<p>All namespaces.</p>"
    else:
        scope = (
            '<p class="note" id="scope">You may not list ModelDeployments in all namespaces; '
            f"shown: namespace(s) {text(', '.join(namespaces))} (from <code>-n</code> or the "
            "kubeconfig context).</p>"
        )
    ordered = sorted(
        items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
    )
    rows = [_mdep_row(o) for o in ordered]
    body = scope + (
        table(
            ["Namespace", "Name", "Target", "Phase", "Score", "Last decision"],
            rows,
            id_="model-deployments",
        )
        if rows
        else "<p>No ModelDeployments.</p>"
    )
    return layout("ModelDeployments", body, user=user)


def approved_page(*, namespace: str, name: str, verdict: str, user: str) -> str:
    """What the user sees after approving or rejecting."""
    done = "Approved" if verdict == "Approve" else "Rejected"
    body = (
        f'<p class="good" id="result">{done} as {text(user)}</p>'
        f'<p><a href="{text(decision_path(namespace, name))}">Back to RollbackDecision '
        f"{text(namespace)}/{text(name)}</a></p>"
    )
    return layout(f"{done} {namespace}/{name}", body, user=user)


def error_page(status: int, message: str, *, user: str) -> str:
    """A clear page for an error: what went wrong, in one line, and the way back."""
    titles = {
        400: "Bad request",
        403: "Refused",
        404: "Not found",
        409: "Not done",
        415: "Bad request",
        421: "Wrong address",
        500: "Internal error",
        502: "Unreadable object",
    }
    body = f'<p class="bad" id="error">{text(message)}</p><p><a href="/">Back to the list</a></p>'
    return layout(titles.get(status, f"Error {status}"), body, user=user)


def forbidden_page(
    *, message: str, verb: str | None, resource: str | None, namespace: str | None, user: str
) -> str:
    """The API server refused the user: which permission is missing, and who can grant it."""
    if verb and resource:
        where = f"in namespace {namespace}" if namespace else "cluster-wide"
        missing = (
            f'<p id="missing">Missing permission: <strong>{text(verb)}</strong> '
            f"<strong>{text(resource)}</strong> {text(where)}.</p>"
            "<p>The dashboard acts with your own kubeconfig credentials; ask a cluster "
            "administrator for a RoleBinding to <code>rollguard-viewer</code> (read) or "
            "<code>rollguard-approver</code> (approve) in that namespace.</p>"
        )
    else:
        missing = '<p id="missing">The API server refused the request.</p>'
    body = (
        f"<p>You are signed in to the cluster as <strong>{text(user)}</strong>.</p>{missing}"
        f'<p class="bad" id="error">{text(message)}</p><p><a href="/">Back to the list</a></p>'
    )
    return layout("Not allowed", body, user=user)
